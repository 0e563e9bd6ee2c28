#!/usr/bin/env bash
# The quickstart (make run): centrald with its embedded MQTT broker plus two
# simulated gates (entry and exit) synced over MQTT, on loopback, data under
# ./var/demo. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DATA=var/demo
mkdir -p "$DATA"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Each gate gets its own broker password (stored hashed by centrald).
declare -A PW
for g in entry-1 exit-1; do
	PW[$g]=$("$BIN/centrald" --config configs/demo.yaml gate add "$g" --role "${g%-1}" | tail -n 1)
done

"$BIN/centrald" --config configs/demo.yaml >"$DATA/centrald.out" 2>"$DATA/centrald.log" &
pids+=($!)
for _ in $(seq 1 100); do
	curl -fsS -o /dev/null http://127.0.0.1:8080/readyz 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null http://127.0.0.1:8080/readyz || { echo "centrald did not start:"; cat "$DATA/centrald.log"; exit 1; }
KEY=$("$BIN/centrald" --config configs/demo.yaml pubkey | tail -n 1)

start_gate() { # id role port
	PARKING_GATE_ID=$1 PARKING_GATE_ROLE=$2 PARKING_HTTP_ADDR=127.0.0.1:$3 \
		PARKING_DB_PATH="$DATA/$1.db" PARKING_TICKETS_PUBLIC_KEY="$KEY" PARKING_HARDWARE_MODE=sim \
		PARKING_MQTT_URL=tcp://127.0.0.1:1884 PARKING_MQTT_PASSWORD="${PW[$1]}" \
		"$BIN/gated" >"$DATA/$1.out" 2>"$DATA/$1.log" &
	pids+=($!)
}
start_gate entry-1 entry 8081
start_gate exit-1 exit 8082
for port in 8081 8082; do
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
		sleep 0.1
	done
done

cat <<TXT
parkgate is running (logs in $DATA/*.log):
  centrald  http://127.0.0.1:8080   try: curl http://127.0.0.1:8080/parkings
            MQTT broker for the gates on 127.0.0.1:1884 (docs/sync.md)
  entry     http://127.0.0.1:8081   try: curl http://127.0.0.1:8081/v1/status
  exit      http://127.0.0.1:8082   (simulated lanes: POST /v1/sim/scan {"code": "<ticket>"})
  admin token: demo-admin-token-not-secret (configs/demo.yaml)
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}"
echo "a daemon stopped; see $DATA/*.log"
