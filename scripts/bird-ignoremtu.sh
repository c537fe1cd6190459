#!/bin/sh
# Build a BIRD 2 with the ignoremtu patch (routing/bird/patch) from Debian's
# bird2 source package into a local prefix, once: the result is cached and
# reused while the patch is unchanged. Prints progress on stderr and, as the
# last line on stdout, the path of the patched bird binary (birdc is next to
# it).
#
#   scripts/bird-ignoremtu.sh            # build if needed, print .../sbin/bird
#
# Environment:
#   BIRD_IGNOREMTU_CACHE  cache directory (default $REPO/.cache/bird-ignoremtu)
#   BIRD_IGNOREMTU_APT=0  never run apt-get (fail if sources/deps are missing)
#
# Needs (installed with apt-get when root and missing): dpkg-dev flex bison
# libssh-gcrypt-dev libreadline-dev libncurses-dev, and a deb-src entry for
# the Debian archive (added as /etc/apt/sources.list.d/vipd-deb-src.sources,
# mirroring debian.sources, when there is none).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
patchfile="$repo/routing/bird/patch/bird-2.0-ignoremtu.patch"
cache=${BIRD_IGNOREMTU_CACHE:-$repo/.cache/bird-ignoremtu}
prefix="$cache/prefix"
deps="dpkg-dev flex bison libssh-gcrypt-dev libreadline-dev libncurses-dev"

log() { echo "bird-ignoremtu: $*" >&2; }

mkdir -p "$cache"
# One build at a time: tests of several packages may ask concurrently.
exec 9>"$cache/lock"
flock 9

stamp=$(sha256sum "$patchfile" | cut -d' ' -f1)
if [ -x "$prefix/sbin/bird" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "$prefix/sbin/bird"
	exit 0
fi

apt_ok=${BIRD_IGNOREMTU_APT:-1}
have_deb_src() {
	grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/
}
if ! have_deb_src; then
	[ "$apt_ok" = 1 ] && [ "$(id -u)" = 0 ] || { log "no deb-src entry in /etc/apt: add one for the Debian archive"; exit 1; }
	src=/etc/apt/sources.list.d/debian.sources
	[ -f "$src" ] || { log "no $src to mirror: add a deb-src entry by hand"; exit 1; }
	log "adding deb-src entries mirroring $src"
	sed 's/^Types: deb$/Types: deb-src/' "$src" >/etc/apt/sources.list.d/vipd-deb-src.sources
	apt-get update -o DPkg::Lock::Timeout=600 >&2
fi
missing=""
for p in $deps; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$apt_ok" = 1 ] && [ "$(id -u)" = 0 ] || { log "missing build dependencies:$missing"; exit 1; }
	log "installing build dependencies:$missing"
	apt-get install -y -o DPkg::Lock::Timeout=600 $missing >&2
fi

work="$cache/src"
rm -rf "$work" "$prefix"
mkdir -p "$work"
log "fetching the bird2 source package"
if ! (cd "$work" && apt-get source bird2 >&2); then
	log "apt-get source failed: running apt-get update once and retrying"
	[ "$apt_ok" = 1 ] && [ "$(id -u)" = 0 ] && apt-get update -o DPkg::Lock::Timeout=600 >&2
	(cd "$work" && apt-get source bird2 >&2)
fi
srcdir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'bird2-*' | head -n1)
[ -n "$srcdir" ] || { log "no bird2-* directory after apt-get source"; exit 1; }

log "patching $(basename "$srcdir")"
(cd "$srcdir" && patch -p1 <"$patchfile" >&2)
log "configuring (prefix $prefix)"
(cd "$srcdir" && ./configure --prefix="$prefix" --sysconfdir="$prefix/etc" \
	--runstatedir="$prefix/run" >"$work/configure.log" 2>&1) ||
	{ tail -n 20 "$work/configure.log" >&2; exit 1; }
log "building (about a minute on 2 cores)"
(cd "$srcdir" && make -j2 >"$work/make.log" 2>&1) || { tail -n 30 "$work/make.log" >&2; exit 1; }
mkdir -p "$prefix/sbin"
cp "$srcdir/bird" "$srcdir/birdc" "$prefix/sbin/"
echo "$stamp" >"$cache/stamp"
log "built $prefix/sbin/bird"
echo "$prefix/sbin/bird"
