#!/usr/bin/env bash
# Attack bench (#22): runs bounded attacks against the release binary on its default
# limits (SQLite, loopback) and prints, for each, the server's peak RSS above idle, its
# fds and RSS before and after the attacker left, and whether a legitimate key login and
# a 1 MiB download (OpenSSH sftp, from 127.0.0.2) succeeded during the attack.
# Attackers come from 127.0.1.1-250 (so the per-host limit does not shield the server)
# except "from one IP". Loopback only; every attack stops by itself; a run takes a few
# minutes. Usage: bench/hostile.sh   (BUILD=0 skips `cargo build`; run as root for the
# fd limit).  Needs: OpenSSH client, python3 with paramiko (pip-installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import paramiko' 2>/dev/null || python3 -m pip install -q paramiko
[ "${BUILD:-1}" = 0 ] || cargo build --release --bin sftpgo -q
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/sftpgo
# 2,000 attacking sockets in this process and as many in the server.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /var/tmp/sftpgo-hostile.XXXXXX)
[ -n "$WORK" ] && [ -d "$WORK" ] || exit 1
PID=
cleanup() {
  set +e
  [ -z "$PID" ] || kill "$PID" 2>/dev/null
  wait 2>/dev/null
  [ -z "${KEEP_LOG:-}" ] || cp "$WORK/ours/sftpgo.log" "$KEEP_LOG"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# One home per user (homes may not overlap); the files each user's attacks need.
mkdir -p "$WORK/ours" "$WORK/homes/victim" "$WORK/homes/worker" "$WORK/homes/legit"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/legit"
head -c $((30 * 1024 * 1024)) /dev/urandom > "$WORK/homes/worker/big.bin"
head -c $((1024 * 1024)) /dev/urandom > "$WORK/homes/worker/legit.bin"
cp "$WORK/homes/worker/legit.bin" "$WORK/homes/legit/legit.bin"
echo held > "$WORK/homes/worker/held.bin"

PORT=$((20000 + RANDOM % 10000)); API_PORT=$((PORT + 1))
# Default limits; logs rotate as by default (10 MB, 5 backups).
SFTPGO_SFTPD__BIND_PORT=$PORT SFTPGO_SFTPD__BIND_ADDRESS=127.0.0.1 \
  SFTPGO_HTTPD__BIND_PORT=$API_PORT SFTPGO_HTTPD__BIND_ADDRESS=127.0.0.1 \
  setsid "$BIN" serve -c "$WORK/ours" -l "$WORK/ours/sftpgo.log" --log-verbose=false &
PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$API_PORT/api/v1/version" >/dev/null && break
  sleep 0.1
done
add_user() { # name, JSON fields
  curl -sf -X POST -H 'Content-Type: application/json' \
    -d "{\"username\":\"$1\",\"home_dir\":\"$WORK/homes/$1\",\"permissions\":[\"*\"],$2}" \
    "http://127.0.0.1:$API_PORT/api/v1/user" >/dev/null
}
add_user victim '"password":"victim-secret"'
# The authenticated attacks log in with a cheap stored hash (bcrypt cost 4), so that their
# figures are what the attack costs, not one argon2id check (64 MiB).
add_user worker "\"password\":\"$(python3 -c 'import bcrypt; print(bcrypt.hashpw(b"worker-secret", bcrypt.gensalt(4)).decode())')\""
add_user legit "\"public_keys\":[\"$(cat "$WORK/legit.pub")\"]"
echo "sftpgo $("$BIN" --version 2>/dev/null | head -1), default limits, pid $PID, idle RSS $(awk '/VmRSS/ {print $2 " kB"}' /proc/$PID/status)"
python3 bench/hostile.py "$PID" "$PORT" "$WORK" worker worker-secret "$WORK/legit"
echo
echo "refusals logged: $(grep -c '"connection refused"' "$WORK/ours/sftpgo.log" || true) at accept," \
  "$(grep -c '"login failed"' "$WORK/ours/sftpgo.log" || true) failed logins," \
  "$(grep -c 'suppressed (rate limit)' "$WORK/ours/sftpgo.log" || true) rate-limit summaries"
