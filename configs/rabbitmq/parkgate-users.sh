#!/bin/sh
# Creates (or updates) parkgate's users on a RabbitMQ cluster and what each
# may publish and read: the rules of configs/mosquitto.acl, as RabbitMQ
# topic permissions on amq.topic (MQTT's "/" is "." there).
#
#   parkgate-users.sh NODE SITE GATE...
#
#   NODE  any node of the cluster (users are shared), e.g. parkgate-mqtt-1@localhost
#   SITE  the site id (centrald's and gated's site)
#   GATE  each gate id (its MQTT user and client id)
#
# Passwords come from the environment, never from the command line:
# PARKGATE_MQTT_CENTRALD_PASSWORD, and PARKGATE_MQTT_<GATE>_PASSWORD for each
# gate (the id upper-cased, "-" as "_"; e.g. PARKGATE_MQTT_ENTRY_1_PASSWORD).
# Run it again to add a gate or change a password: nothing needs a restart.
# It also deletes RabbitMQ's default "guest" user.
set -eu

if [ $# -lt 2 ]; then
	echo "usage: $0 NODE SITE [GATE...]" >&2
	exit 2
fi
node=$1 site=$2
shift 2
case $site in
*[!A-Za-z0-9_-]* | "") echo "$0: site id $site: letters, digits, - and _ only" >&2; exit 2 ;;
esac
ctl() { rabbitmqctl -q -n "$node" "$@"; }

# user NAME PASSWORD: created, or its password set if it exists. The
# password goes to rabbitmqctl on its standard input (--pre-filled-password
# is not used), so that it is not in any process list.
user() {
	if ctl list_users | cut -f1 | grep -qx -- "$1"; then
		printf '%s\n' "$2" | ctl change_password -- "$1"
	else
		printf '%s\n' "$2" | ctl add_user -- "$1"
	fi
	# MQTT needs the user's own subscription queues and the topic exchange.
	ctl set_permissions -p / -- "$1" '^mqtt-subscription-.*' '^(amq\.topic|mqtt-subscription-.*)$' '^(amq\.topic|mqtt-subscription-.*)$'
}
password() {
	var=PARKGATE_MQTT_$(printf '%s' "$1" | tr 'a-z-' 'A-Z_')_PASSWORD
	eval "value=\${$var:-}"
	if [ -z "$value" ]; then
		echo "$0: $var is not set" >&2
		exit 2
	fi
	printf '%s' "$value"
}

# RabbitMQ creates "guest" (password "guest", every permission, every
# topic) on a new cluster; from this machine it could read every plate and
# publish as any gate. parkgate does not use it.
if ctl list_users | cut -f1 | grep -qx guest; then
	ctl delete_user guest
	echo "guest: deleted"
fi

# Each password is read into a variable first: a failure inside "$(...)"
# given straight as an argument would not stop the script (set -e does not
# see it), and the user would get an empty password.
pw=$(password centrald)
user centrald "$pw"
ctl set_topic_permissions -p / centrald amq.topic "^parking\\.$site\\..*" "^parking\\.$site\\..*"
for gate in "$@"; do
	case $gate in
	*[!A-Za-z0-9_-]* | "") echo "$0: gate id $gate: letters, digits, - and _ only" >&2; exit 2 ;;
	esac
	pw=$(password "$gate")
	user "$gate" "$pw"
	# {username} is the connection's user, so each gate writes only its own
	# status, events, resync requests and command results, and reads only
	# its own inbox and what central sends to every gate.
	ctl set_topic_permissions -p / "$gate" amq.topic \
		"^parking\\.$site\\.gates\\.{username}\\.(status|events|sync|result)\$" \
		"^parking\\.$site\\.(gates\\.{username}\\.in\\..*|central\\..*)\$"
	echo "gate $gate: user and permissions set"
done
echo "centrald: user and permissions set"
