#!/usr/bin/env bash
# Side-by-side throughput of sftpgo (release build) and OpenSSH's sshd with internal-sftp,
# on loopback, same data dir, same OpenSSH `sftp` client. Prints one line per figure:
#   <figure> ours=<x> openssh=<y> ratio=<x/y>
# Usage: bench/run.sh [size_mib] [repetitions]   (defaults: 1024 MiB, 3 repetitions)
# Needs: openssh-server (sshd), python3. Run as root (sshd needs it).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
REPS=${2:-3}
CIPHERS=${CIPHERS:-"aes128-gcm@openssh.com chacha20-poly1305@openssh.com aes128-ctr"}

command -v /usr/sbin/sshd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server; }
cargo build --release --bin sftpgo -q
BIN=$PWD/target/release/sftpgo

WORK=$(mktemp -d /var/tmp/sftpgo-bench.XXXXXX)
trap 'kill $OURS_PID $SSHD_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/data" "$WORK/ours" "$WORK/sshd" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$WORK/client"
dd if=/dev/urandom of="$WORK/src.bin" bs=1M count="$SIZE_MIB" status=none

# Our server: SQLite user pointing at the shared data dir.
python3 - "$WORK" <<'PY'
import sqlite3, sys, json
w = sys.argv[1]
db = sqlite3.connect(f"{w}/ours/sftpgo.db")
db.execute('''CREATE TABLE IF NOT EXISTS users ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "username" varchar(255) NOT NULL UNIQUE,
 "password" varchar(255) NULL, "public_keys" text NULL, "home_dir" varchar(255) NOT NULL, "uid" integer NOT NULL, "gid" integer NOT NULL,
 "max_sessions" integer NOT NULL, "quota_size" bigint NOT NULL, "quota_files" integer NOT NULL, "permissions" text NOT NULL,
 "used_quota_size" bigint NOT NULL, "used_quota_files" integer NOT NULL, "last_quota_update" bigint NOT NULL,
 "upload_bandwidth" integer NOT NULL, "download_bandwidth" integer NOT NULL)''')
key = open(f"{w}/client.pub").read().strip()
db.execute("INSERT INTO users (username, password, public_keys, home_dir, uid, gid, max_sessions, quota_size, quota_files, permissions, used_quota_size, used_quota_files, last_quota_update, upload_bandwidth, download_bandwidth) VALUES ('bench', NULL, ?, ?, 0,0,0,0,0,'[\"*\"]',0,0,0,0,0)", (json.dumps([key]), f"{w}/data"))
db.commit()
PY
OURS_PORT=$((20000 + RANDOM % 10000)); SSHD_PORT=$((OURS_PORT + 1))
SFTPGO_SFTPD__BIND_PORT=$OURS_PORT SFTPGO_SFTPD__BIND_ADDRESS=127.0.0.1 SFTPGO_HTTPD__BIND_PORT=0 \
  "$BIN" serve -c "$WORK/ours" -l "$WORK/ours/sftpgo.log" --log-verbose=false &
OURS_PID=$!

# OpenSSH: private sshd, root with the same key, internal-sftp, same data dir as cwd.
ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd/host"
cp "$WORK/client.pub" "$WORK/sshd/authorized_keys"
cat > "$WORK/sshd/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/sshd/host
PermitRootLogin prohibit-password
AuthorizedKeysFile $WORK/sshd/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp -d $WORK/data
PidFile $WORK/sshd/pid
CONF
/usr/sbin/sshd -D -f "$WORK/sshd/sshd_config" &
SSHD_PID=$!
sleep 1

cpu_of() { # utime+stime+cutime+cstime in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15+$16+$17)/hz}' "/proc/$1/stat"
}
sftp_run() { # server cipher batch
  local port user
  if [ "$1" = ours ]; then port=$OURS_PORT; user=bench; else port=$SSHD_PORT; user=root; fi
  sftp -q -b "$3" -P "$port" -i "$WORK/client" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o Ciphers="$2" -o MACs=hmac-sha2-256-etm@openssh.com \
    "$user@127.0.0.1" >/dev/null
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

RESULTS="$WORK/results.txt"; : > "$RESULTS"
echo "put $WORK/src.bin /up.bin" > "$WORK/up.batch"
echo "get /up.bin /dev/null" > "$WORK/down.batch"
for cipher in $CIPHERS; do
  for dir in up down; do
    for server in ours openssh; do
      pid=$OURS_PID; [ $server = openssh ] && pid=$SSHD_PID
      rates=(); cpus=()
      for _ in $(seq "$REPS"); do
        c0=$(cpu_of $pid); t0=$(date +%s.%N)
        sftp_run $server "$cipher" "$WORK/$dir.batch"
        t1=$(date +%s.%N); c1=$(cpu_of $pid)
        rates+=("$(echo "$SIZE_MIB * 1.048576 / ($t1 - $t0)" | bc -l)")
        cpus+=("$(echo "($c1 - $c0) * 1024 / $SIZE_MIB" | bc -l)")
      done
      r=$(printf '%s\n' "${rates[@]}" | median); c=$(printf '%s\n' "${cpus[@]}" | median)
      lo=$(printf '%s\n' "${rates[@]}" | sort -g | head -1); hi=$(printf '%s\n' "${rates[@]}" | sort -g | tail -1)
      echo "$cipher $dir $server $r $c $lo $hi" >> "$RESULTS"
    done
  done
done
echo "| cipher | dir | ours MB/s (min-max) | OpenSSH MB/s (min-max) | ratio | ours CPU s/GiB | OpenSSH CPU s/GiB |"
echo "|---|---|---|---|---|---|---|"
awk '{k=$1" "$2; if ($3=="ours") {o[k]=$4; oc[k]=$5; ol[k]=$6; oh[k]=$7} else {s[k]=$4; sc[k]=$5; sl[k]=$6; sh[k]=$7; keys[++n]=k}}
  END {for (i=1;i<=n;i++) {k=keys[i]; split(k,p," "); printf "| %s | %s | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %.2f | %.2f | %.2f |\n", p[1], p[2], o[k], ol[k], oh[k], s[k], sl[k], sh[k], o[k]/s[k], oc[k], sc[k]}}' "$RESULTS"
