#!/usr/bin/env bash
# (The team's shared Garage starter, kept here so that tests and CI find it in the tree.)
# start-garage.sh - throwaway single-node Garage (S3-compatible store) for integration tests.
#
# Start (prints shell variables on stdout, progress on stderr):
#   eval "$(./start-garage.sh BASE_DIR [S3_PORT] [RPC_PORT] [ADMIN_PORT])"
#   defaults: ports 3900 3901 3903; everything lives under BASE_DIR.
# Stop:
#   ./start-garage.sh --stop BASE_DIR          (kills the PID in BASE_DIR/garage.pid only)
#   rm -rf BASE_DIR                            (wipe all data afterwards)
#
# Environment knobs (all optional):
#   GARAGE_BIN              garage binary   (default: garage on PATH, else ~/.cargo/bin/garage)
#   GARAGE_INIT_BUCKET      bucket name     (default: test-bucket)
#   GARAGE_INIT_KEY_NAME    key name        (default: test-key)
#   GARAGE_INIT_ACCESS_KEY_ID     fixed key id (default: random GK + 24 hex)
#   GARAGE_INIT_SECRET_ACCESS_KEY fixed secret (default: random 64 hex)
#   GARAGE_READY_TIMEOUT    seconds to wait (default: 30)
#   GARAGE_DB_ENGINE        sqlite | lmdb   (default: sqlite; lmdb rejects object keys > 479 bytes with a 503)
# Re-running on an existing BASE_DIR (after --stop) restarts the same node with its data,
# layout, key and bucket (the config, including rpc_secret, is reused).
set -euo pipefail

log() { printf '[start-garage] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ "${1:-}" == "--stop" ]]; then
    base=${2:?usage: $0 --stop BASE_DIR}
    pidfile="$base/garage.pid"
    [[ -f "$pidfile" ]] || die "no $pidfile"
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then log "pid $pid still alive after 10s, sending KILL"; kill -KILL "$pid"; fi
        log "stopped garage pid $pid"
    else
        log "garage pid $pid not running"
    fi
    rm -f "$pidfile"
    exit 0
fi

base=${1:?usage: $0 BASE_DIR [S3_PORT] [RPC_PORT] [ADMIN_PORT]  |  $0 --stop BASE_DIR}
s3_port=${2:-3900}
rpc_port=${3:-3901}
admin_port=${4:-3903}
bucket=${GARAGE_INIT_BUCKET:-test-bucket}
key_name=${GARAGE_INIT_KEY_NAME:-test-key}
timeout=${GARAGE_READY_TIMEOUT:-30}
db_engine=${GARAGE_DB_ENGINE:-sqlite}
bin=${GARAGE_BIN:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
[[ -x "$bin" ]] || die "garage binary not found (set GARAGE_BIN)"
command -v curl >/dev/null || die "curl is required"
command -v openssl >/dev/null || die "openssl is required"

mkdir -p "$base/meta" "$base/data"
base=$(cd "$base" && pwd)
cfg="$base/garage.toml"
pidfile="$base/garage.pid"
logfile="$base/garage.log"

if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    die "garage already running for $base (pid $(cat "$pidfile")); use --stop first"
fi

if [[ ! -f "$cfg" ]]; then
    umask 077
    cat > "$cfg" <<EOF
metadata_dir = "$base/meta"
data_dir = "$base/data"
db_engine = "$db_engine"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$(openssl rand -hex 32)"
EOF
    umask 022
    log "wrote $cfg"
else
    log "reusing existing $cfg (ports in it win over arguments)"
    s3_port=$(sed -n '/^\[s3_api\]/,/^\[/s/^api_bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$cfg")
    admin_port=$(sed -n '/^\[admin\]/,/^\[/s/^api_bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$cfg")
fi

g() { "$bin" -c "$cfg" "$@"; }

rpc_port=$(sed -n 's/^rpc_bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$cfg")
for p in "$s3_port" "$rpc_port" "$admin_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p on 127.0.0.1 is already in use"; fi
done

t0=$(date +%s.%N)
# stdin/stdout/stderr detached so that  eval "$(start-garage.sh ...)"  returns immediately.
nohup sh -c 'echo $$ > "$1"; exec "$2" -c "$3" server' sh "$pidfile" "$bin" "$cfg" \
    </dev/null >>"$logfile" 2>&1 &
for _ in $(seq 1 50); do [[ -s "$pidfile" ]] && break; sleep 0.02; done
pid=$(cat "$pidfile")
log "garage server started, pid $pid, log $logfile"

deadline=$(( $(date +%s) + timeout ))
health() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/health" || true; }
alive_or_die() {
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$logfile" >&2; die "garage exited during start-up"; }
    (( $(date +%s) < deadline )) || { tail -n 20 "$logfile" >&2; die "not ready after ${timeout}s"; }
}

# 1. wait for the admin API to answer (503 = up but no layout yet, 200 = fully operational)
while :; do code=$(health); [[ "$code" == 200 || "$code" == 503 ]] && break; alive_or_die; sleep 0.05; done
# ... and for the RPC endpoint the CLI talks to
until g status >/dev/null 2>&1; do alive_or_die; sleep 0.1; done

# 2. layout: assign this single node once (version 0 -> 1)
layout_version=$(g json-api GetClusterLayout | sed -n 's/^  "version": \([0-9]*\).*/\1/p')
if [[ "${layout_version:-0}" == 0 ]]; then
    node_id=$(g node id -q 2>/dev/null); node_id=${node_id%%@*}
    g layout assign -z dc1 -c 1G "$node_id" >&2
    g layout apply --version 1 >&2
else
    log "layout already at version $layout_version"
fi

# 3. wait until all partitions have quorum
until [[ "$(health)" == 200 ]]; do alive_or_die; sleep 0.05; done
alive_or_die
t_ready=$(date +%s.%N)

# 4. key + bucket (idempotent: reuse what a previous run created)
envfile="$base/env.sh"
if [[ -f "$envfile" ]]; then
    # shellcheck disable=SC1090
    . "$envfile"
    key_id=$GARAGE_ACCESS_KEY_ID; secret=$GARAGE_SECRET_ACCESS_KEY; bucket=$GARAGE_BUCKET
    log "reusing key $key_id and bucket $bucket from $envfile"
else
    key_id=${GARAGE_INIT_ACCESS_KEY_ID:-GK$(openssl rand -hex 12)}
    secret=${GARAGE_INIT_SECRET_ACCESS_KEY:-$(openssl rand -hex 32)}
    g key import --yes -n "$key_name" "$key_id" "$secret" >/dev/null
    g bucket create "$bucket" >/dev/null
    g bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null
    umask 077
    cat > "$envfile" <<EOF
GARAGE_ENDPOINT='http://127.0.0.1:$s3_port'
GARAGE_REGION='garage'
GARAGE_ACCESS_KEY_ID='$key_id'
GARAGE_SECRET_ACCESS_KEY='$secret'
GARAGE_BUCKET='$bucket'
EOF
    umask 022
    log "created key $key_id ($key_name) and bucket $bucket (RWO)"
fi
t_done=$(date +%s.%N)
log "$(awk -v a="$t0" -v b="$t_ready" -v c="$t_done" \
    'BEGIN{printf "healthy %.2fs after spawn, key+bucket ready %.2fs after spawn", b-a, c-a}')"

cat <<EOF
export GARAGE_ENDPOINT='http://127.0.0.1:$s3_port'
export GARAGE_REGION='garage'
export GARAGE_ACCESS_KEY_ID='$key_id'
export GARAGE_SECRET_ACCESS_KEY='$secret'
export GARAGE_BUCKET='$bucket'
export GARAGE_PID='$pid'
export GARAGE_BASE='$base'
export GARAGE_CONFIG='$cfg'
# stop with: $0 --stop '$base'   (or: kill $pid)
EOF
