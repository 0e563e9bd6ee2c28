#!/usr/bin/env bash
# The quickstart (make run): centrald with its embedded MQTT broker plus two
# simulated gates (entry and exit) synced over MQTT, on loopback, data under
# ./var/demo. Ctrl-C stops everything.
#
# A second demo must never disturb a running one: before it touches
# anything (logs, database, gate passwords) it takes a lock on the data
# directory and checks that every port it needs is free, and it refuses
# with the name of whatever holds them. The ports and the data directory
# can be moved with PARKGATE_DEMO_{HTTP,MQTT,ENTRY,EXIT}_PORT and
# PARKGATE_DEMO_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DATA=${PARKGATE_DEMO_DATA:-var/demo}
HTTP_PORT=${PARKGATE_DEMO_HTTP_PORT:-8080}
MQTT_PORT=${PARKGATE_DEMO_MQTT_PORT:-1884}
ENTRY_PORT=${PARKGATE_DEMO_ENTRY_PORT:-8081}
EXIT_PORT=${PARKGATE_DEMO_EXIT_PORT:-8082}

refuse() {
	echo "make run: $*" >&2
	exit 1
}

# holder PORT prints what listens on the port, as far as this user may see.
holder() {
	local who=""
	if command -v ss >/dev/null 2>&1; then
		who=$(ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1)
	fi
	if [ -z "$who" ] && command -v lsof >/dev/null 2>&1; then
		who=$(lsof -nP -iTCP:"$1" -sTCP:LISTEN 2>/dev/null | awk 'NR==2 {print "\"" $1 "\" (pid " $2 ")"}')
	fi
	echo "${who:-another program}"
}

# port_taken PORT: true when something accepts connections on it. bash's
# /dev/tcp needs no tool beyond the shell.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 1. The data directory: one demo at a time. The lock lives as long as this
# shell (fd 9), so a demo that dies releases it.
mkdir -p "$DATA"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$DATA/demo.lock"
	if ! flock -n 9; then
		refuse "another demo is running on $DATA (it holds $DATA/demo.lock); stop it first (Ctrl-C in its terminal)"
	fi
fi

# 2. The ports, all of them, before anything is written.
taken=()
for p in "$HTTP_PORT" "$MQTT_PORT" "$ENTRY_PORT" "$EXIT_PORT"; do
	if port_taken "$p"; then
		taken+=("127.0.0.1:$p is held by $(holder "$p")")
	fi
done
if [ ${#taken[@]} -gt 0 ]; then
	for t in "${taken[@]}"; do echo "make run: $t" >&2; done
	refuse "the demo needs ports $HTTP_PORT, $MQTT_PORT, $ENTRY_PORT and $EXIT_PORT free; nothing was started or changed (is another 'make run' up?)"
fi

# The daemons die with this script even when it is killed outright (kill
# -9 runs no trap, and they would hold the demo's ports until found by
# hand): Linux's parent-death signal, set by util-linux's setpriv where
# there is one.
tied=()
if command -v setpriv >/dev/null 2>&1 && setpriv --pdeathsig KILL true 2>/dev/null; then
	tied=(setpriv --pdeathsig KILL --)
fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# centrald's settings beyond configs/demo.yaml: where this demo lives.
export PARKING_HTTP_ADDR=127.0.0.1:$HTTP_PORT
export PARKING_MQTT_LISTEN=127.0.0.1:$MQTT_PORT
export PARKING_DB_DSN=$DATA/centrald.db
export PARKING_TICKETS_KEY_FILE=$DATA/tickets.key
API=http://127.0.0.1:$HTTP_PORT

# Each gate gets its own broker password (stored hashed by centrald).
declare -A PW
for g in entry-1 exit-1; do
	PW[$g]=$("$BIN/centrald" --config configs/demo.yaml gate add "$g" --role "${g%-1}" | tail -n 1)
done

# The console's demo operator: a new password each run, shown below.
OPERATOR_PW=$("$BIN/centrald" --config configs/demo.yaml operator add demo | tail -n 1)

${tied[@]+"${tied[@]}"} "$BIN/centrald" --config configs/demo.yaml >"$DATA/centrald.out" 2>"$DATA/centrald.log" &
pids+=($!)
for _ in $(seq 1 100); do
	curl -fsS -o /dev/null "$API/readyz" 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null "$API/readyz" || { echo "centrald did not start:"; cat "$DATA/centrald.log"; exit 1; }
KEY=$("$BIN/centrald" --config configs/demo.yaml pubkey | tail -n 1)

start_gate() { # id role port
	# The gates do not read centrald's settings.
	env -u PARKING_HTTP_ADDR -u PARKING_MQTT_LISTEN -u PARKING_DB_DSN -u PARKING_TICKETS_KEY_FILE \
		PARKING_GATE_ID="$1" PARKING_GATE_ROLE="$2" PARKING_HTTP_ADDR="127.0.0.1:$3" \
		PARKING_DB_PATH="$DATA/$1.db" PARKING_TICKETS_PUBLIC_KEY="$KEY" PARKING_HARDWARE_MODE=sim \
		PARKING_MQTT_URL="tcp://127.0.0.1:$MQTT_PORT" PARKING_MQTT_PASSWORD="${PW[$1]}" \
		${tied[@]+"${tied[@]}"} "$BIN/gated" >"$DATA/$1.out" 2>"$DATA/$1.log" &
	pids+=($!)
}
start_gate entry-1 entry "$ENTRY_PORT"
start_gate exit-1 exit "$EXIT_PORT"
for port in "$ENTRY_PORT" "$EXIT_PORT"; do
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
		sleep 0.1
	done
done

# Only what this demo started counts: a daemon that died at start (a port
# taken a moment after the check) must not pass for one that answers.
for p in "${pids[@]}"; do
	kill -0 "$p" 2>/dev/null || { echo "a daemon of the demo exited at start; see $DATA/*.log" >&2; exit 1; }
done

cat <<TXT
parkgate is running (logs in $DATA/*.log):
  console   $API/console/   sign in as: demo  password: $OPERATOR_PW
  centrald  $API   try: curl $API/parkings
            MQTT broker for the gates on 127.0.0.1:$MQTT_PORT (docs/sync.md)
  entry     http://127.0.0.1:$ENTRY_PORT   try: curl http://127.0.0.1:$ENTRY_PORT/v1/status
  exit      http://127.0.0.1:$EXIT_PORT   (simulated lanes: POST /v1/sim/scan {"code": "<ticket>"})
  admin token: demo-admin-token-not-secret (configs/demo.yaml)
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}"
echo "a daemon stopped; see $DATA/*.log"
