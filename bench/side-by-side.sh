#!/usr/bin/env bash
# Side-by-side load run: the same wrk script (bench/wrk/answer.lua), the same thread
# and connection counts, against twofa (UCloud challenge answers, SQLite) and
# privacyIDEA (/validate/check by serial, SQLite in WAL mode, gunicorn, 2 workers),
# one after the other on this machine. Prints both results side by side.
#
#   bench/side-by-side.sh
#
# Settings (environment):
#   TWOFA_USERS   users seeded in twofa, one challenge each, each answered once; must
#                 exceed what twofa answers in DURATION [250000]
#   PI_TOKENS     privacyIDEA TOTP tokens; each takes one code per 30 s step, plus one
#                 step ahead [2000]
#   DURATION      wrk -d [30s]; THREADS wrk -t [2]; CONNECTIONS wrk -c [64]
#   TIMEOUT       wrk --timeout [10s]: wrk drops an answer slower than this from the
#                 latency figures (counted as a timeout); well above privacyIDEA's p99
#   TWOFA_PORT [18088], PI_PORT [18089]; CARGO_TARGET_DIR as cargo reads it.
#   ONLY=twofa or ONLY=privacyidea  run one side only.
#   KEEP=1        keep the temporary directory (its path is printed).
#
# Needs: cargo, python3 (with venv), curl; wrk is installed with apt-get when missing.
# privacyIDEA comes from PyPI into a venv in the temporary directory, its versions pinned
# by bench/privacyidea/constraints.txt. Everything else temporary is under one mktemp
# directory (mode 0700), removed at the end, and every process started here is stopped
# by its pid.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TWOFA_USERS=${TWOFA_USERS:-250000}
PI_TOKENS=${PI_TOKENS:-2000}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
TIMEOUT=${TIMEOUT:-10s}
TWOFA_PORT=${TWOFA_PORT:-18088}
PI_PORT=${PI_PORT:-18089}
PI_VERSION=3.14
STEPS=20 # codes for 20 steps (10 minutes) from when a request file is written

WORK=$(mktemp -d -t twofa-side-by-side.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# CPU seconds (user + system) of the given processes, all threads, from /proc.
cpu_seconds() {
  local ticks=0 pid fields
  for pid in "$@"; do
    # Fields after the parenthesised command name: utime is the 12th, stime the 13th.
    fields=$(sed 's/^.*) //' "/proc/$pid/stat")
    ticks=$((ticks + $(awk '{print $12 + $13}' <<<"$fields")))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}

# Resident memory of the given processes, MiB.
rss_mib() {
  local kib=0 pid
  for pid in "$@"; do
    kib=$((kib + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
  done
  awk -v k="$kib" 'BEGIN {printf "%.0f", k / 1024}'
}

# Waits until FILE has a line matching PATTERN, while PID lives; at most SECONDS.
wait_for_line() {
  local file=$1 pattern=$2 pid=$3 seconds=$4 i
  for ((i = 0; i < seconds * 10; i++)); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; echo "process $pid exited" >&2; return 1; }
    sleep 0.1
  done
  cat "$file" >&2
  echo "timed out waiting for '$pattern' in $file" >&2
  return 1
}

# A value of the RESULT line wrk's done() printed: result FILE KEY
result() {
  if [[ -f $1 ]]; then sed -n 's/^RESULT .*\b'"$2"'=\([^ ]*\).*$/\1/p' "$1"; else echo -; fi
}

run_wrk() { # URL REQUESTS_FILE KIND OUT
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout "$TIMEOUT" --latency \
    -s "$ROOT/bench/wrk/answer.lua" "$1" -- "$2" "$THREADS" "$3" | tee "$4"
}

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

ONLY=${ONLY:-}
TWOFA_CPU=- TWOFA_RSS=- PI_CPU=- PI_RSS=- TWOFA_LOAD=- PI_LOAD=-
T=$WORK/twofa-wrk.txt P=$WORK/pi-wrk.txt

# ---- twofa ----------------------------------------------------------------------
if [[ $ONLY != privacyidea ]]; then
log "building twofa-bench (release)"
(cd "$ROOT" && nice -n 10 cargo build --release -q -p twofa-bench)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/twofa-bench
[[ $BIN == /* ]] || BIN=$ROOT/$BIN

log "twofa: seeding $TWOFA_USERS users"
"$BIN" --serve --requests-file "$WORK/twofa-requests.txt" --users "$TWOFA_USERS" \
  --steps "$STEPS" --bind "127.0.0.1:$TWOFA_PORT" >"$WORK/twofa.log" 2>&1 &
TWOFA_PID=$!
PIDS+=("$TWOFA_PID")
wait_for_line "$WORK/twofa.log" '^serving ' "$TWOFA_PID" 1800
cat "$WORK/twofa.log" >&2
TWOFA_URL=$(sed -n 's/^serving //p' "$WORK/twofa.log")

log "twofa: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout $TIMEOUT $TWOFA_URL"
TWOFA_LOAD=$(cut -d' ' -f1 /proc/loadavg)
cpu0=$(cpu_seconds "$TWOFA_PID")
run_wrk "$TWOFA_URL" "$WORK/twofa-requests.txt" ucloud "$WORK/twofa-wrk.txt"
cpu1=$(cpu_seconds "$TWOFA_PID")
TWOFA_RSS=$(rss_mib "$TWOFA_PID")
kill -TERM "$TWOFA_PID"
wait "$TWOFA_PID" || true
sed -n '/^stopped/p' "$WORK/twofa.log" >&2
TWOFA_CPU=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(result "$WORK/twofa-wrk.txt" requests)" \
  'BEGIN {printf "%.3f", 1000 * (b - a) / n}')
fi

# ---- privacyIDEA ----------------------------------------------------------------
if [[ $ONLY != twofa ]]; then
log "privacyIDEA $PI_VERSION: installing from PyPI into a venv"
PI=$WORK/pi
mkdir -m 700 "$PI"
python3 -m venv "$PI/venv"
"$PI/venv/bin/pip" install -q --disable-pip-version-check \
  -c "$ROOT/bench/privacyidea/constraints.txt" "privacyIDEA==$PI_VERSION" gunicorn

secret() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }
ADMIN_PASSWORD=$(secret)
umask 077
cat >"$PI/pi.cfg" <<EOF
SQLALCHEMY_DATABASE_URI = 'sqlite:///$PI/pi.sqlite'
SECRET_KEY = '$(secret)'
PI_PEPPER = '$(secret)'
PI_ENCFILE = '$PI/enckey'
PI_AUDIT_KEY_PRIVATE = '$PI/private.pem'
PI_AUDIT_KEY_PUBLIC = '$PI/public.pem'
PI_LOGFILE = '$PI/privacyidea.log'
PI_LOGLEVEL = 30
PI_NODE = 'bench'
EOF
export PRIVACYIDEA_CONFIGFILE=$PI/pi.cfg
log "privacyIDEA: keys, tables (SQLite, WAL), admin"
(
  cd "$PI"
  venv/bin/pi-manage setup create_enckey
  venv/bin/pi-manage setup create_audit_keys
  venv/bin/pi-manage setup create_tables
  venv/bin/pi-manage admin add admin -p "$ADMIN_PASSWORD"
) >"$PI/setup.log" 2>&1 || { cat "$PI/setup.log" >&2; exit 1; }
python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')" "$PI/pi.sqlite"

log "privacyIDEA: gunicorn, 2 workers, on 127.0.0.1:$PI_PORT"
(cd "$PI" && exec venv/bin/gunicorn --workers 2 --bind "127.0.0.1:$PI_PORT" --no-control-socket \
  "privacyidea.app:create_app(config_name='production', config_file='$PI/pi.cfg', silent=True)") \
  >"$PI/gunicorn.log" 2>&1 &
PI_PID=$!
PIDS+=("$PI_PID")
wait_for_line "$PI/gunicorn.log" 'Booting worker' "$PI_PID" 60
auth_token=""
for _ in $(seq 1 100); do
  auth_token=$(curl -s -X POST "http://127.0.0.1:$PI_PORT/auth" --data-urlencode username=admin \
    --data-urlencode "password=$ADMIN_PASSWORD" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["value"]["token"])' 2>/dev/null) && break
  sleep 0.3
done
[[ -n $auth_token ]] || { echo "privacyIDEA: no admin token" >&2; cat "$PI/gunicorn.log" >&2; exit 1; }

log "privacyIDEA: importing $PI_TOKENS TOTP tokens (OATH CSV, POST /token/load)"
python3 "$ROOT/bench/privacyidea/make_tokens.py" "$PI_TOKENS" "$STEPS" "$PI/tokens.csv" "$PI/requests.txt"
imported=$(curl -s -H "Authorization: $auth_token" -F type=oathcsv -F "file=@$PI/tokens.csv" \
  "http://127.0.0.1:$PI_PORT/token/load/tokens.csv" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["value"]["n_imported"])')
[[ $imported == "$PI_TOKENS" ]] || { echo "privacyIDEA imported $imported of $PI_TOKENS tokens" >&2; exit 1; }

PI_URL="http://127.0.0.1:$PI_PORT/validate/check"
log "privacyIDEA: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout $TIMEOUT $PI_URL"
PI_PIDS=("$PI_PID" $(ps -o pid= --ppid "$PI_PID"))
PI_LOAD=$(cut -d' ' -f1 /proc/loadavg)
cpu0=$(cpu_seconds "${PI_PIDS[@]}")
run_wrk "$PI_URL" "$PI/requests.txt" privacyidea "$WORK/pi-wrk.txt"
cpu1=$(cpu_seconds "${PI_PIDS[@]}")
PI_RSS=$(rss_mib "${PI_PIDS[@]}")
PI_CPU=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(result "$WORK/pi-wrk.txt" requests)" \
  'BEGIN {printf "%.3f", 1000 * (b - a) / n}')
fi

# ---- side by side ---------------------------------------------------------------
row() { printf '%-34s %16s %22s\n' "$1" "$2" "$3"; }
echo
echo "Side by side, $(date -u +%F), $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout $TIMEOUT --latency, bench/wrk/answer.lua"
row "" "twofa" "privacyIDEA $PI_VERSION"
row "what is answered" "UCloud challenge" "/validate/check"
row "requests/s" "$(result "$T" rps)" "$(result "$P" rps)"
row "correct-code answers/s" "$(result "$T" accepted_rps)" "$(result "$P" accepted_rps)"
row "p50 latency (ms)" "$(result "$T" p50_ms)" "$(result "$P" p50_ms)"
row "p99 latency (ms)" "$(result "$T" p99_ms)" "$(result "$P" p99_ms)"
row "requests" "$(result "$T" requests)" "$(result "$P" requests)"
row "not accepted (non-200 / rejected)" "$(result "$T" non200) / $(result "$T" rejected)" "$(result "$P" non200) / $(result "$P" rejected)"
row "socket errors" "$(result "$T" socket_errors)" "$(result "$P" socket_errors)"
row "server CPU per request (ms)" "$TWOFA_CPU" "$PI_CPU"
row "server RSS after the run (MiB)" "$TWOFA_RSS" "$PI_RSS"
row "1-min load average before the run" "$TWOFA_LOAD" "$PI_LOAD"
for f in "$T" "$P"; do
  [[ -f $f ]] || continue
  if [[ $(result "$f" exhausted) != 0 || $(result "$f" stale) != 0 ]]; then
    echo "WARNING: $(basename "$f"): requests without a fresh line or code (see above); raise TWOFA_USERS / PI_TOKENS" >&2
  fi
done
