#!/usr/bin/env bash
# make deb: the parkgate-centrald, parkgate-gated and parkgate-cli Debian
# packages for amd64, arm64 and armhf into dist/, and dist/SHA256SUMS.
#
# Variables (all optional):
#   VERSION         the build's version, as `git describe --tags --always
#                   --dirty` prints it (the default); the packages take its
#                   Debian form (internal/tools/debmeta: v0.6.0-3-gabc →
#                   0.6.0+3.gabc), the binaries' `version` prints it as is
#   DEB_VERSION     the packages' version instead of VERSION's Debian form
#   DEB_ARCHES      "amd64 arm64 armhf" by default
#   DIST            where the packages go (dist)
#   DEB_MAINTAINER  the packages' Maintainer field
#   SOURCE_DATE_EPOCH  the files' time in the packages (default: the last
#                   commit's), so that a build of a commit can be repeated
#
# nfpm (github.com/goreleaser/nfpm/v2) is built at a pinned version from the
# module proxy into build/deb/tools rather than imported: its packaging
# dependencies stay out of the project's go.mod, and go.sum's checksum
# database still pins exactly what runs.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
NFPM_MODULE=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST=${DIST:-dist}
BUILD=build/deb
VERSION=${VERSION:-$(git describe --tags --always --dirty)}
DEB_ARCHES=${DEB_ARCHES:-amd64 arm64 armhf}
DEB_MAINTAINER=${DEB_MAINTAINER:-parkgate maintainers <maintainers@parkgate.invalid>}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH DEB_MAINTAINER

rm -rf "${BUILD:?}/etc" "${BUILD:?}/doc"
mkdir -p "$BUILD/tools" "$BUILD/etc" "$DIST"
GOBIN="$PWD/$BUILD/tools" $GO install "$NFPM_MODULE"
$GO build -o "$BUILD/tools/debmeta" ./internal/tools/debmeta
DEB_VERSION=${DEB_VERSION:-$("$BUILD/tools/debmeta" version "$VERSION" "$(git rev-list --count HEAD)")}
export DEB_VERSION DEB_BUILD="$BUILD"
echo "parkgate $VERSION → Debian version $DEB_VERSION"

# The packaged configs are the repository's commented examples with the
# data files' paths made absolute: relative paths resolve against the
# working directory, which is /var/lib/parkgate under the units but
# wherever an admin stands when running `centrald gate enroll` or
# `gated import` by hand.
packaged_config() { # source, destination, note, then "FROM=TO" line pairs
	local src=$1 dst=$2 note=$3 pair from to
	shift 3
	# The note goes after the file's first line, which names the program.
	{ head -n 1 "$src"; printf '#\n%s\n' "$note"; tail -n +2 "$src"; } >"$dst"
	for pair in "$@"; do
		from=${pair%%=*} to=${pair#*=}
		if [ "$(grep -cxF -- "$from" "$dst")" != 1 ]; then
			echo "deb-build: $src has no single line \"$from\" to make absolute; update scripts/deb-build.sh" >&2
			exit 1
		fi
		FROM=$from TO=$to perl -pi -e 'chomp; $_ = $ENV{TO} if $_ eq $ENV{FROM}; $_ .= "\n"' "$dst"
	done
	# A data file left relative would end up wherever the command runs.
	if grep -nE '^ *([a-z_]+: *"?[A-Za-z0-9_.-]+\.(db|key|json|pem|crt)"?|dir: *"?[A-Za-z0-9_.-]+"?) *$' "$dst" | grep -v ': */' >&2; then
		echo "deb-build: $src: the file paths above are relative; make them absolute in scripts/deb-build.sh" >&2
		exit 1
	fi
}
packaged_config configs/centrald.yaml "$BUILD/etc/centrald.yaml" \
	"# As packaged, the data files' paths below are in /var/lib/parkgate (the
# built-in defaults are relative to the working directory, which is
# /var/lib/parkgate under centrald.service)." \
	"  dsn: centrald.db=  dsn: /var/lib/parkgate/centrald.db" \
	"    state_file: fakepay.json=    state_file: /var/lib/parkgate/fakepay.json" \
	"  key_file: tickets.key=  key_file: /var/lib/parkgate/tickets.key" \
	"  key_file: enroll.key=  key_file: /var/lib/parkgate/enroll.key" \
	"    dir: mqtt-tls=    dir: /var/lib/parkgate/mqtt-tls"
packaged_config configs/gated.yaml "$BUILD/etc/gated.yaml" \
	"# As packaged, db.path is in /var/lib/parkgate and hardware.mode is rpi
# (the built-in defaults: relative to the working directory, and sim)." \
	"  path: gated.db=  path: /var/lib/parkgate/gated.db" \
	"  mode: sim=  mode: rpi"

# Debian wants each package's changelog in its own format: CHANGELOG.md,
# rendered (gzip -n: no name or time in it, so the build repeats).
for pkg in parkgate-centrald parkgate-gated parkgate-cli; do
	mkdir -p "$BUILD/doc/$pkg"
	"$BUILD/tools/debmeta" changelog "$pkg" "$DEB_VERSION" "$SOURCE_DATE_EPOCH" "$DEB_MAINTAINER" <CHANGELOG.md |
		gzip -9n >"$BUILD/doc/$pkg/changelog.gz"
done

LDFLAGS="-s -w -X github.com/parkgate/parkgate/internal/version.Version=$VERSION"

# Each program's manual page is its --help text (debmeta manpage), taken
# from a build for this machine.
echo "== manual pages"
rm -rf "${BUILD:?}/man" && mkdir -p "$BUILD/host" "$BUILD/man"
CGO_ENABLED=0 $GO build -trimpath -ldflags "$LDFLAGS" -o "$BUILD/host/" ./cmd/centrald ./cmd/gated ./cmd/parkctl
manpage() { # program, summary, PATH=WHAT...
	local prog=$1
	shift
	# --help may exit 2 (usage) while printing the text: the text is checked.
	{ "$BUILD/host/$prog" --help 2>&1 || true; } |
		"$BUILD/tools/debmeta" manpage "$prog" "$DEB_VERSION" "$SOURCE_DATE_EPOCH" "$@" |
		gzip -9n >"$BUILD/man/$prog.1.gz"
}
manpage centrald "parkgate central reservation server" \
	"/etc/parkgate/centrald.yaml=the configuration (every key with its default and meaning)" \
	"/etc/parkgate/centrald.env=PARKING_* variables for the service, e.g. the admin token" \
	"/var/lib/parkgate=the database, the ticket signing key and the broker's certificates"
manpage gated "parkgate gate controller for one barrier lane" \
	"/etc/parkgate/gated.yaml=the configuration, as gated enroll writes it" \
	"/etc/parkgate/gated.env=PARKING_* variables for the service" \
	"/var/lib/parkgate/gated.db=the lane's reservation cache and outbox"
manpage parkctl "command-line client of the parkgate parking system"

rm -f "$DIST"/parkgate-*.deb "$DIST/SHA256SUMS"
for arch in $DEB_ARCHES; do
	case "$arch" in
	amd64) goarch=amd64 goarm= ;;
	arm64) goarch=arm64 goarm= ;;
	# Raspberry Pi OS 32-bit is armhf built for ARMv6 (the Pi Zero and 1);
	# GOARM=6 runs on every Pi and on Debian's ARMv7 armhf alike.
	armhf) goarch=arm goarm=6 ;;
	*) echo "deb-build: unknown architecture $arch (amd64, arm64, armhf)" >&2; exit 2 ;;
	esac
	mkdir -p "$BUILD/$arch"
	echo "== $arch: centrald, gated, parkctl"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm $GO build -trimpath -ldflags "$LDFLAGS" \
		-o "$BUILD/$arch/" ./cmd/centrald ./cmd/gated ./cmd/parkctl
	for pkg in centrald gated cli; do
		DEB_ARCH=$arch "$BUILD/tools/nfpm" package --config "packaging/deb/nfpm-$pkg.yaml" \
			--packager deb --target "$DIST/" | sed 's/^/  /'
	done
done
(cd "$DIST" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' | LC_ALL=C sort | xargs -r sha256sum >SHA256SUMS)
echo "== $DIST/SHA256SUMS"
cat "$DIST/SHA256SUMS"
