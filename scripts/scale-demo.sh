#!/usr/bin/env bash
# make scale-demo: the scale-out deployment of docs/scaling.md on loopback.
#
#   HAProxy    127.0.0.1:8080  (configs/haproxy.cfg; stats on :8404)
#   centrald   127.0.0.1:8091, :8092, :8093, all on one PostgreSQL database
#   Mosquitto  127.0.0.1:18830 (configs/mosquitto.conf and .acl, its own
#              copy: a system Mosquitto may hold 1883)
#   gates      entry-1 on :8081, exit-1 on :8082 (simulated lanes)
#
# Needs: PostgreSQL (PARKGATE_DEMO_DSN, default the local server's database
# parkgate_demo, created if missing and psql is installed), haproxy and
# mosquitto (with mosquitto_passwd) on the PATH. Data and logs under
# ./var/scale-demo. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DATA=var/scale-demo
DSN=${PARKGATE_DEMO_DSN:-postgres://postgres@127.0.0.1:5432/parkgate_demo?sslmode=disable}
MQTT_PORT=${PARKGATE_DEMO_MQTT_PORT:-18830}
ADMIN=demo-admin-token-not-secret

for tool in haproxy mosquitto mosquitto_passwd curl; do
	command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
	command -v "$tool" >/dev/null 2>&1 || { echo "scale-demo needs $tool (Debian: apt-get install haproxy mosquitto mosquitto-clients curl)"; exit 1; }
done
mkdir -p "$DATA"
chmod 700 "$DATA"

# The database: created when it is missing and psql can reach the server.
if command -v psql >/dev/null 2>&1; then
	db=${DSN##*/}
	db=${db%%\?*}
	admin_dsn=${DSN%/*}/postgres
	if ! psql "$admin_dsn" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
		echo "creating database $db"
		psql "$admin_dsn" -qc "CREATE DATABASE \"$db\""
	fi
fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_http() { # url what logfile
	for _ in $(seq 1 150); do
		curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$2 did not come up ($1); its log:"
	cat "$3"
	exit 1
}

# centrald's settings, shared by the instances (only http.addr differs).
# Each gate's broker password, and centrald's.
CENTRAL_PW=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
CENV=(PARKING_SITE=demo PARKING_DB_DRIVER=postgres "PARKING_DB_DSN=$DSN"
	PARKING_SPOTS_COUNT=20 PARKING_MQTT_EMBEDDED=false "PARKING_MQTT_URL=tcp://127.0.0.1:$MQTT_PORT"
	PARKING_MQTT_USERNAME=centrald "PARKING_MQTT_PASSWORD=$CENTRAL_PW" "PARKING_AUTH_ADMIN_TOKEN=$ADMIN"
	"PARKING_TICKETS_KEY_FILE=$DATA/tickets.key" PARKING_RESERVATIONS_SWEEP_INTERVAL=5s)
declare -A PW
: >"$DATA/mosquitto.passwd"
chmod 600 "$DATA/mosquitto.passwd"
mosquitto_passwd -b "$DATA/mosquitto.passwd" centrald "$CENTRAL_PW"
for g in entry-1 exit-1; do
	PW[$g]=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	mosquitto_passwd -b "$DATA/mosquitto.passwd" "$g" "${PW[$g]}"
done

# Mosquitto with the shipped configuration, moved to this port and directory.
cp configs/mosquitto.acl "$DATA/mosquitto.acl"
sed -e "s|^listener 1883 127.0.0.1|listener $MQTT_PORT 127.0.0.1|" \
	-e "s|/etc/mosquitto/parkgate.passwd|$PWD/$DATA/mosquitto.passwd|" \
	-e "s|/etc/mosquitto/parkgate.acl|$PWD/$DATA/mosquitto.acl|" \
	-e "s|/var/lib/mosquitto/|$PWD/$DATA/|" configs/mosquitto.conf >"$DATA/mosquitto.conf"
# Started as root, Mosquitto would switch to the "mosquitto" user, which
# cannot read this directory: stay who we are.
echo "user $(id -un)" >>"$DATA/mosquitto.conf"
mosquitto -c "$DATA/mosquitto.conf" >"$DATA/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null || { echo "mosquitto did not start:"; cat "$DATA/mosquitto.log"; exit 1; }

# The first instance creates the schema (the others would wait for it on
# the migration lock anyway) and the ticket key the others share.
for i in 1 2 3; do
	env "${CENV[@]}" PARKING_HTTP_ADDR=127.0.0.1:809$i "$BIN/centrald" >"$DATA/centrald-$i.out" 2>"$DATA/centrald-$i.log" &
	pids+=($!)
	if [ "$i" = 1 ]; then wait_http http://127.0.0.1:8091/readyz centrald-1 "$DATA/centrald-1.log"; fi
done
wait_http http://127.0.0.1:8092/readyz centrald-2 "$DATA/centrald-2.log"
wait_http http://127.0.0.1:8093/readyz centrald-3 "$DATA/centrald-3.log"

haproxy -f configs/haproxy.cfg >"$DATA/haproxy.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:8080/readyz haproxy "$DATA/haproxy.log"
KEY=$(curl -fsS http://127.0.0.1:8080/tickets/public-key | sed -n 's/.*"publicKey":"\([^"]*\)".*/\1/p')

# The gates' roles, which central checks their events against (the
# password gate add prints is for the embedded broker: ignored here, where
# Mosquitto's password file holds the gates' logins).
for g in entry-1 exit-1; do
	env "${CENV[@]}" "$BIN/centrald" gate add "$g" --role "${g%-1}" >/dev/null
done

start_gate() { # id role port
	PARKING_SITE=demo PARKING_GATE_ID=$1 PARKING_GATE_ROLE=$2 PARKING_HTTP_ADDR=127.0.0.1:$3 \
		PARKING_DB_PATH="$DATA/$1.db" PARKING_TICKETS_PUBLIC_KEY="$KEY" PARKING_HARDWARE_MODE=sim \
		PARKING_MQTT_URL="tcp://127.0.0.1:$MQTT_PORT" PARKING_MQTT_USERNAME="$1" PARKING_MQTT_PASSWORD="${PW[$1]}" \
		"$BIN/gated" >"$DATA/$1.out" 2>"$DATA/$1.log" &
	pids+=($!)
}
start_gate entry-1 entry 8081
start_gate exit-1 exit 8082
wait_http http://127.0.0.1:8081/healthz entry-1 "$DATA/entry-1.log"
wait_http http://127.0.0.1:8082/healthz exit-1 "$DATA/exit-1.log"

cat <<TXT
parkgate scale-out demo is running (logs in $DATA/*.log):
  HAProxy    http://127.0.0.1:8080   try: curl http://127.0.0.1:8080/parkings
             stats: http://127.0.0.1:8404/
  centrald   http://127.0.0.1:8091 .. :8093, PostgreSQL $DSN
             which one relays to the gates: curl -s http://127.0.0.1:809{1,2,3}/metrics | grep ^parkgate_sync_relaying
  Mosquitto  127.0.0.1:$MQTT_PORT
  entry      http://127.0.0.1:8081   exit http://127.0.0.1:8082   (POST /v1/sim/scan {"code": "<ticket>"})
  admin token: $ADMIN
Kill one centrald (kill -9 <pid>) and keep using :8080; the others carry on.
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}" || true
echo "a process stopped; still running: the rest. Ctrl-C to stop them (logs in $DATA)."
wait
