# Shared by scripts/load, scripts/load-erase and scripts/load-scale (sourced,
# not run). Builds lethe and lethe-load into $WORK, tracks the processes it
# starts and removes them, the PostgreSQL schemas it creates and $WORK on
# exit (LOAD_KEEP_LOGS=DIR keeps the processes' logs there). The caller sets `set -euo pipefail` and may append its own cleanup
# to CLEANUP_HOOKS.

PG_BASE="${LETHE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
WORK="$(mktemp -d -t lethe-load.XXXXXX)"
PIDS=()
SCHEMAS=()
CLEANUP_HOOKS=()
cleanup() {
  local p s h
  for h in "${CLEANUP_HOOKS[@]}"; do $h || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for s in "${SCHEMAS[@]}"; do
    PGOPTIONS=--client-min-messages=warning psql -q "$PG_BASE" -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
  if [ -n "${LOAD_KEEP_LOGS:-}" ]; then
    mkdir -p "$LOAD_KEEP_LOGS" && (cd "$WORK" && find . -name "*.log" -exec cp --parents {} "$LOAD_KEEP_LOGS"/ \;) || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# build: lethe and lethe-load from this tree, or LETHE_BIN (a lethe binary
# built elsewhere, e.g. from a fixed commit) instead of building lethe.
build() {
  if [ -n "${LETHE_BIN:-}" ]; then
    echo "building lethe-load; lethe is $LETHE_BIN" >&2
    cp "$LETHE_BIN" "$WORK/lethe"
  else
    echo "building lethe and lethe-load" >&2
    go build -o "$WORK/lethe" ./cmd/lethe
  fi
  go build -o "$WORK/lethe-load" ./cmd/lethe-load
}

ADMIN_TOKEN="load-admin-token-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export LETHE_ADMIN_TOKEN="$ADMIN_TOKEN"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# with_param URL K=V: URL with one more query parameter.
with_param() { local sep='?'; case "$1" in *\?*) sep='&' ;; esac; echo "$1$sep$2"; }

# pg_schema NAME: creates a schema dropped on exit and sets SCHEMA_URL to
# a URL using it. (Not in $(...): the subshell would lose SCHEMAS.)
pg_schema() {
  psql -q "$PG_BASE" -c "CREATE SCHEMA $1" >/dev/null
  SCHEMAS+=("$1")
  SCHEMA_URL="$(with_param "$PG_BASE" "search_path=$1")"
}

# start LOG CMD...: starts CMD in the background; its pid is in $LAST_PID.
start() {
  local log="$1"; shift
  "$@" 2>"$log" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# stop PID: SIGTERM and wait.
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wait_ready URL PID: until GET URL/readyz answers (60s).
wait_ready() {
  for _ in $(seq 1 600); do
    if curl -fsS "$1/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "process $2 exited before $1 was ready" >&2; return 1; fi
    sleep 0.1
  done
  echo "$1 not ready after 60s" >&2; return 1
}

# hwm PID: the process's peak resident set (VmHWM) in MB.
hwm() { awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$1/status"; }
