#!/usr/bin/env bash
# CI for the Debian packages (.ci/run calls it after `make deb`): lintian,
# then the amd64 packages really installed on this machine with dpkg,
# checked (files, modes, user, groups, units with systemd-analyze verify),
# used, upgraded to a second build (edited configs and data survive),
# removed (configs and data stay) and purged (all gone). Needs root and
# dpkg; systemd need not be running (the packages' scripts guard every
# systemctl call).
#
# It leaves the machine as it found it, on failure too: it refuses to
# start over an existing parkgate installation, records what it creates in
# a state file, and undoes it on exit (or at its next start, should it
# have been killed).
#
# Usage: scripts/deb-check.sh [DIST]   (DIST: where make deb put them, dist)
set -euo pipefail
cd "$(dirname "$0")/.."
DIST=${1:-dist}
STATE=/var/tmp/parkgate-deb-check.state
PKGS=(parkgate-cli parkgate-gated parkgate-centrald)

[ "$(id -u)" = 0 ] || { echo "deb-check: needs root (dpkg -i)"; exit 1; }
command -v dpkg >/dev/null || { echo "deb-check: needs dpkg"; exit 1; }

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# Undo what a run created: the packages (purged), their directories, the
# system user and groups that did not exist before, enablement symlinks.
cleanup() {
	local pkg
	[ -f "$STATE" ] || return 0
	for pkg in "${PKGS[@]}"; do
		if [ -n "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -v not-installed || true)" ]; then
			dpkg --purge "$pkg" >/dev/null 2>&1 || true
		fi
	done
	rm -rf /etc/parkgate /var/lib/parkgate
	rm -f /etc/systemd/system/*.wants/centrald.service /etc/systemd/system/*.wants/gated.service
	if grep -qx 'created-user parkgate' "$STATE" && getent passwd parkgate >/dev/null; then
		userdel parkgate 2>/dev/null || true
	fi
	for g in parkgate gpio dialout; do
		if grep -qx "created-group $g" "$STATE" && getent group "$g" >/dev/null; then
			groupdel "$g" 2>/dev/null || true
		fi
	done
	sed -n 's/^work //p' "$STATE" | while read -r dir; do rm -rf "$dir"; done
	rm -f "$STATE"
}

if [ -f "$STATE" ]; then
	echo "deb-check: a previous run did not finish; undoing what it created"
	cleanup
fi
for pkg in "${PKGS[@]}"; do
	if dpkg-query -W -f='${db:Status-Status}\n' "$pkg" 2>/dev/null | grep -qv not-installed; then
		fail "$pkg is already on this machine; this check installs and purges it, so it will not run here"
	fi
done
[ ! -e /etc/parkgate ] && [ ! -e /var/lib/parkgate ] ||
	fail "/etc/parkgate or /var/lib/parkgate exists; this check would delete it, so it will not run here"

WORK=$(mktemp -d)
{
	echo "work $WORK"
	getent passwd parkgate >/dev/null || echo "created-user parkgate"
	for g in parkgate gpio dialout; do getent group "$g" >/dev/null || echo "created-group $g"; done
} >"$STATE"
trap cleanup EXIT

GATED_DEB=$(find "$DIST" -maxdepth 1 -name 'parkgate-gated_*_amd64.deb' 2>/dev/null | head -n 1 || true)
[ -n "$GATED_DEB" ] || fail "no $DIST/parkgate-gated_*_amd64.deb: run make deb first"
V1=$(dpkg-deb -f "$GATED_DEB" Version)
deb() { echo "$1/$2_$3_amd64.deb"; }
for pkg in "${PKGS[@]}"; do [ -f "$(deb "$DIST" "$pkg" "$V1")" ] || fail "no $(deb "$DIST" "$pkg" "$V1"): run make deb first"; done

echo "== lintian"
# Errors fail the check; warnings are printed (README, "Packages").
command -v lintian >/dev/null || (apt-get update -qq && apt-get install -y -qq lintian) >/dev/null
LINT_RC=0
LINT_OUT=$(lintian --fail-on error "$DIST"/parkgate-*.deb 2>&1) || LINT_RC=$?
echo "$LINT_OUT" | grep -v 'running with root privileges is not recommended' || true
[ "$LINT_RC" = 0 ] || fail "lintian reports errors (exit $LINT_RC)"
ok "lintian: no errors on $(ls "$DIST"/parkgate-*.deb | wc -l) packages"

echo "== install $V1"
dpkg -i "$(deb "$DIST" parkgate-centrald "$V1")" "$(deb "$DIST" parkgate-gated "$V1")" "$(deb "$DIST" parkgate-cli "$V1")" >"$WORK/install.log" 2>&1 ||
	{ cat "$WORK/install.log"; fail "dpkg -i"; }
grep -q 'gated enroll --central URL --code CODE' "$WORK/install.log" || { cat "$WORK/install.log"; fail "gated's postinst does not say what to do next"; }
grep -q 'systemctl enable --now centrald' "$WORK/install.log" || { cat "$WORK/install.log"; fail "centrald's postinst does not say what to do next"; }

# mode owner group path
want_files() {
	local mode owner group path got
	while read -r mode owner group path; do
		[ -e "$path" ] || fail "$path is missing"
		got=$(stat -c '%a %U %G' "$path")
		[ "$got" = "$mode $owner $group" ] || fail "$path is $got, want $mode $owner $group"
	done
}
want_files <<'FILES'
755 root root /usr/bin/centrald
755 root root /usr/bin/gated
755 root root /usr/bin/parkctl
644 root root /usr/lib/systemd/system/centrald.service
644 root root /usr/lib/systemd/system/gated.service
644 root root /usr/lib/sysusers.d/parkgate-centrald.conf
644 root root /usr/lib/sysusers.d/parkgate-gated.conf
644 root root /usr/lib/modules-load.d/parkgate-gated.conf
640 root parkgate /etc/parkgate/centrald.yaml
640 root parkgate /etc/parkgate/gated.yaml
700 parkgate parkgate /var/lib/parkgate
644 root root /usr/share/doc/parkgate-centrald/copyright
644 root root /usr/share/doc/parkgate-gated/changelog.gz
644 root root /usr/share/doc/parkgate-cli/changelog.gz
644 root root /usr/share/man/man1/centrald.1.gz
644 root root /usr/share/man/man1/gated.1.gz
644 root root /usr/share/man/man1/parkctl.1.gz
FILES
for pkg in parkgate-centrald parkgate-gated; do
	conf=/etc/parkgate/${pkg#parkgate-}.yaml
	dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q " $conf " || fail "$conf is not a conffile of $pkg"
done
ok "files, modes and conffiles"

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd parkgate) || fail "no user parkgate"
[ "$uid" -lt 1000 ] || fail "parkgate has uid $uid, not a system user"
[ "$home" = /var/lib/parkgate ] || fail "parkgate's home is $home"
case "$shell" in */nologin|/bin/false) ;; *) fail "parkgate's shell is $shell" ;; esac
for g in gpio dialout; do
	id -nG parkgate | tr ' ' '\n' | grep -qx "$g" || fail "parkgate is not in group $g ($(id -nG parkgate))"
done
ok "system user parkgate (uid $uid), in groups $(id -nG parkgate)"

for l in /etc/systemd/system/*.wants/centrald.service /etc/systemd/system/*.wants/gated.service; do
	[ ! -L "$l" ] || fail "the install enabled a service: $l"
done
ok "neither service enabled"

# verify needs the units' binaries, which the packages installed; any
# message (an unknown key is only a warning) fails.
command -v systemd-analyze >/dev/null || (apt-get update -qq && apt-get install -y -qq systemd) >/dev/null
UNITS_OUT=$(systemd-analyze verify /usr/lib/systemd/system/centrald.service /usr/lib/systemd/system/gated.service 2>&1) ||
	{ echo "$UNITS_OUT"; fail "systemd-analyze verify on the installed units"; }
[ -z "$UNITS_OUT" ] || { echo "$UNITS_OUT"; fail "systemd-analyze verify: warnings on the installed units"; }
ok "systemd-analyze verify: installed centrald.service, gated.service"

echo "== use: the packaged configs, as the service user"
as_parkgate() { (cd / && runuser -u parkgate -- "$@"); }
as_parkgate centrald --config /etc/parkgate/centrald.yaml check-config >/dev/null || fail "centrald check-config on the packaged config"
as_parkgate gated --config /etc/parkgate/gated.yaml check-config >"$WORK/gcc.log" 2>&1 || { cat "$WORK/gcc.log"; fail "gated check-config on the packaged config"; }
as_parkgate centrald --config /etc/parkgate/centrald.yaml gate add entry-1 --role entry >/dev/null || fail "centrald gate add"
[ -f /var/lib/parkgate/centrald.db ] || fail "centrald gate add did not write /var/lib/parkgate/centrald.db (relative path in the packaged config?)"
echo '{"version": 1, "reservations": []}' | as_parkgate gated --config /etc/parkgate/gated.yaml import - >/dev/null || fail "gated import"
[ -f /var/lib/parkgate/gated.db ] || fail "gated import did not write /var/lib/parkgate/gated.db"
parkctl --help >/dev/null || fail "parkctl --help"
echo "# edited by deb-check" >>/etc/parkgate/gated.yaml
sed -i 's/^site: demo$/site: debcheck/' /etc/parkgate/centrald.yaml
grep -qx 'site: debcheck' /etc/parkgate/centrald.yaml || fail "could not edit centrald.yaml"
echo kept >/var/lib/parkgate/marker
DB_SUM=$(sha256sum </var/lib/parkgate/centrald.db)
systemctl enable gated.service >/dev/null 2>&1 || fail "systemctl enable gated (offline)"
ls /etc/systemd/system/multi-user.target.wants/gated.service >/dev/null || fail "systemctl enable made no symlink"
ok "check-config, gate add, import; configs edited, gated enabled"

echo "== upgrade to a second build"
V2="$V1.1"
DIST2="$WORK/dist2"
DIST="$DIST2" DEB_ARCHES=amd64 DEB_VERSION="$V2" VERSION=deb-check-upgrade scripts/deb-build.sh >"$WORK/build2.log" 2>&1 ||
	{ cat "$WORK/build2.log"; fail "second build"; }
dpkg --compare-versions "$V2" gt "$V1" || fail "$V2 does not sort after $V1"
dpkg -i "$(deb "$DIST2" parkgate-centrald "$V2")" "$(deb "$DIST2" parkgate-gated "$V2")" "$(deb "$DIST2" parkgate-cli "$V2")" </dev/null >"$WORK/upgrade.log" 2>&1 ||
	{ cat "$WORK/upgrade.log"; fail "dpkg -i (upgrade)"; }
for pkg in "${PKGS[@]}"; do
	[ "$(dpkg-query -W -f='${Version}' "$pkg")" = "$V2" ] || fail "$pkg not at $V2 after the upgrade"
done
gated version | grep -q deb-check-upgrade || fail "gated is not the new binary: $(gated version)"
grep -qx '# edited by deb-check' /etc/parkgate/gated.yaml || fail "the edit to gated.yaml was lost"
grep -qx 'site: debcheck' /etc/parkgate/centrald.yaml || fail "the edit to centrald.yaml was lost"
[ "$(stat -c '%a %U %G' /etc/parkgate/gated.yaml)" = "640 root parkgate" ] || fail "gated.yaml's mode after the upgrade: $(stat -c '%a %U %G' /etc/parkgate/gated.yaml)"
[ "$(cat /var/lib/parkgate/marker)" = kept ] || fail "/var/lib/parkgate/marker lost"
[ "$(sha256sum </var/lib/parkgate/centrald.db)" = "$DB_SUM" ] || fail "centrald.db changed in the upgrade"
ls /etc/systemd/system/multi-user.target.wants/gated.service >/dev/null || fail "the upgrade disabled gated"
ok "upgraded $V1 → $V2: binaries new; edited configs, data and enablement kept"

echo "== a lane from the packages: centrald gate enroll, gated enroll, online at central"
# What the README's install path does, with nothing copied by hand: the
# packaged centrald (TLS broker with its own CA) issues a code, gated
# enroll writes the lane's config from it, and the lane comes online over
# TLS. Free ports instead of the packaged ones, so that nothing else on the
# machine is disturbed; gated in sim mode (no GPIO here).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
P_HTTP=$(free_port) P_MQTT=$(free_port) P_TLS=$(free_port) P_GATE=$(free_port)
ADMIN=deb-check-admin-token
LANE_PIDS=()
stop_lane() { local p; for p in "${LANE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${LANE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; LANE_PIDS=(); }
trap 'stop_lane; cleanup' EXIT
(cd / && PARKING_HTTP_ADDR=127.0.0.1:$P_HTTP PARKING_MQTT_LISTEN=127.0.0.1:$P_MQTT PARKING_MQTT_TLS_LISTEN=127.0.0.1:$P_TLS \
	PARKING_AUTH_ADMIN_TOKEN=$ADMIN exec runuser -u parkgate -- centrald --config /etc/parkgate/centrald.yaml) >"$WORK/centrald.log" 2>&1 &
LANE_PIDS+=($!)
for _ in $(seq 1 100); do curl -fsS --max-time 2 "http://127.0.0.1:$P_HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS --max-time 2 "http://127.0.0.1:$P_HTTP/healthz" >/dev/null 2>&1 || { cat "$WORK/centrald.log"; fail "the packaged centrald did not answer"; }
CODE=$(as_parkgate centrald --config /etc/parkgate/centrald.yaml gate enroll lane-1 --role entry | tail -n 1) || fail "centrald gate enroll"
gated enroll --central "http://127.0.0.1:$P_HTTP" --code "$CODE" --hardware sim >"$WORK/enroll.log" 2>&1 ||
	{ cat "$WORK/enroll.log"; fail "gated enroll"; }
MODE=$(stat -c '%a %U' /etc/parkgate/gated.yaml)
case "$MODE" in "600 parkgate" | "640 root") ;; *) fail "gated.yaml after enroll: $MODE (gated's user must read it, nobody else)" ;; esac
grep -q "ssl://127.0.0.1:$P_TLS" /etc/parkgate/gated.yaml || fail "gated.yaml does not point at the TLS broker"
if gated enroll --central "http://127.0.0.1:$P_HTTP" --code "$CODE" >"$WORK/enroll2.log" 2>&1; then fail "the same code enrolled twice"; fi
(cd / && PARKING_HTTP_ADDR=127.0.0.1:$P_GATE exec runuser -u parkgate -- gated --config /etc/parkgate/gated.yaml) >"$WORK/gated.log" 2>&1 &
LANE_PIDS+=($!)
online=""
for _ in $(seq 1 150); do
	if curl -fsS --max-time 2 -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$P_HTTP/gates" 2>/dev/null | grep -q '"id":"lane-1"[^}]*"online":true'; then online=1; break; fi
	sleep 0.2
done
[ -n "$online" ] || { cat "$WORK/gated.log" "$WORK/centrald.log"; curl -sS -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$P_HTTP/gates"; fail "lane-1 not online at central within 30 s"; }
stop_lane
trap cleanup EXIT
ok "lane-1 enrolled with one code and online at central over TLS; the code refused a second time"

echo "== remove"
dpkg --remove "${PKGS[@]}" >"$WORK/remove.log" 2>&1 || { cat "$WORK/remove.log"; fail "dpkg --remove"; }
for f in /usr/bin/centrald /usr/bin/gated /usr/bin/parkctl /usr/lib/systemd/system/gated.service /usr/lib/sysusers.d/parkgate-gated.conf; do
	[ ! -e "$f" ] || fail "$f is still there after remove"
done
for f in /etc/parkgate/gated.yaml /etc/parkgate/centrald.yaml /var/lib/parkgate/centrald.db /var/lib/parkgate/gated.db; do
	[ -e "$f" ] || fail "remove deleted $f (only purge may)"
done
ok "remove: programs gone; configs and data kept"

echo "== purge"
# gated first: centrald (removed, its config kept) still uses the shared
# /var/lib/parkgate, so only the lane's database goes.
dpkg --purge parkgate-gated >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "dpkg --purge parkgate-gated"; }
[ ! -e /etc/parkgate/gated.yaml ] || fail "purge kept /etc/parkgate/gated.yaml"
[ ! -e /var/lib/parkgate/gated.db ] || fail "purge kept /var/lib/parkgate/gated.db"
[ -e /var/lib/parkgate/centrald.db ] && [ -e /etc/parkgate/centrald.yaml ] || fail "purging gated deleted centrald's config or data"
[ ! -e /etc/systemd/system/multi-user.target.wants/gated.service ] || fail "purge kept gated's enablement"
dpkg --purge parkgate-centrald parkgate-cli >>"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "dpkg --purge"; }
for f in /etc/parkgate /var/lib/parkgate /usr/share/doc/parkgate-gated /usr/share/doc/parkgate-centrald /usr/share/doc/parkgate-cli; do
	[ ! -e "$f" ] || fail "$f is still there after purge"
done
for pkg in "${PKGS[@]}"; do
	dpkg-query -W -f='${db:Status-Status}\n' "$pkg" 2>/dev/null | grep -qv not-installed && fail "$pkg still known to dpkg after purge"
done

# The user stays, as Debian leaves system users (see the postrm scripts);
# cleanup removes it here, since this run created it.
getent passwd parkgate >/dev/null || fail "purge deleted the system user (Debian keeps it)"
ok "purge: configs, data and enablement gone; the system user kept"

echo "== purge in the other order"
# centrald purged while gated stays keeps the lane's
# config and database, and deletes everything else of central's.
dpkg -i "$(deb "$DIST2" parkgate-centrald "$V2")" "$(deb "$DIST2" parkgate-gated "$V2")" >"$WORK/install2.log" 2>&1 ||
	{ cat "$WORK/install2.log"; fail "dpkg -i (second install)"; }
as_parkgate centrald --config /etc/parkgate/centrald.yaml pubkey >/dev/null || fail "centrald pubkey"
echo '{"version": 1, "reservations": []}' | as_parkgate gated --config /etc/parkgate/gated.yaml import - >/dev/null || fail "gated import"
[ -f /var/lib/parkgate/tickets.key ] && [ -f /var/lib/parkgate/gated.db ] || fail "no tickets.key or gated.db to purge"
dpkg --purge parkgate-centrald >"$WORK/purge2.log" 2>&1 || { cat "$WORK/purge2.log"; fail "dpkg --purge parkgate-centrald"; }
[ -e /var/lib/parkgate/gated.db ] && [ -e /etc/parkgate/gated.yaml ] || fail "purging centrald deleted gated's config or data"
left=$(find /var/lib/parkgate -mindepth 1 ! -name 'gated.db*' | head -n 3)
[ -z "$left" ] || fail "purging centrald left $left"
[ ! -e /etc/parkgate/centrald.yaml ] || fail "purge kept /etc/parkgate/centrald.yaml"
dpkg --purge parkgate-gated >>"$WORK/purge2.log" 2>&1 || { cat "$WORK/purge2.log"; fail "dpkg --purge parkgate-gated"; }
[ ! -e /etc/parkgate ] && [ ! -e /var/lib/parkgate ] || fail "/etc/parkgate or /var/lib/parkgate left after purging both"
ok "purge in the other order: centrald's files gone, the lane's kept until its own purge"

echo "deb-check: all passed"
