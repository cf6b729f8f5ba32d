#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a real `sftpgo serve` with the OpenAPI document the
# server publishes: no 5xx, every response conforms to the document (status, content type,
# headers, schema), invalid input is refused, undocumented methods are 405. The API runs
# with Basic auth, so the auth checks take part too. Fails when schemathesis fails.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
VENV="${SCHEMATHESIS_VENV:-$HOME/.cache/sftpgo-ci/schemathesis-$ST_VERSION}"
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi

WORK="$(mktemp -d)"
PID=
cleanup() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# SFTPGO_BIN: a prebuilt binary to test instead of building one.
if [ -z "${SFTPGO_BIN:-}" ]; then
  SFTPGO_BIN="$(cargo build -q -p sftpgo --bin sftpgo --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])
')"
fi
cp "$SFTPGO_BIN" "$WORK/sftpgo"
BIN="$WORK/sftpgo"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
SSH_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
# bcrypt (cost 4) of "schemathesis".
printf '%s\n' 'admin:$2b$04$Zvj42rkXWvpejIexmRmqOu2rUakK292EBzkAq5kYropAx3nn9cDbm' > "$WORK/htpasswd"
mkdir -p "$WORK/homes"

SFTPGO_SFTPD__BIND_ADDRESS=127.0.0.1 SFTPGO_SFTPD__BIND_PORT="$SSH_PORT" \
SFTPGO_HTTPD__BIND_ADDRESS=127.0.0.1 SFTPGO_HTTPD__BIND_PORT="$HTTP_PORT" \
SFTPGO_HTTPD__AUTH_USER_FILE=htpasswd \
  "$BIN" serve -c "$WORK" -l "$WORK/sftpgo.log" -v false &
PID=$!

BASE="http://127.0.0.1:$HTTP_PORT/api/v1"
for _ in $(seq 120); do
  curl -sf -u admin:schemathesis "$BASE/version" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { echo "sftpgo exited; log:"; cat "$WORK/sftpgo.log"; exit 1; }
  sleep 0.5
done
curl -sf -u admin:schemathesis "$BASE/version" >/dev/null

# One worker: with several, this schemathesis/hypothesis pair sometimes fails inside its
# own lambda introspection ("AST constructor recursion depth mismatch").
# positive_data_acceptance is left out: valid-looking users can still be refused for what
# a schema cannot say (unparseable public keys, a taken username, an unknown id).
status=0
# Run from the temp dir: schemathesis keeps a cache (.schemathesis/) in its working dir.
(cd "$WORK" && "$VENV/bin/schemathesis" run "$BASE/openapi.yaml" \
  --auth admin:schemathesis \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 \
  --request-timeout 30 \
  --no-color "$@") || status=$?
if [ "$status" != 0 ]; then
  echo "schemathesis failed ($status); last server log lines:"
  tail -n 50 "$WORK/sftpgo.log"
fi
exit "$status"
