#!/usr/bin/env bash
# make package-test: install the vipd .deb into a minimal Debian root made
# by debootstrap, as a fresh machine would get it, and run what an operator
# runs first: 'vipctl --version', 'vipd --check-config'. Then reinstall (the
# upgrade path of the maintainer scripts), remove (the conffile stays) and
# purge (config and state go).
#
# The pristine root is built once and cached in .cache/debootstrap/SUITE;
# each run works on an overlay (or a copy) of it, so the cache stays clean.
# Needs root (chroot, mount). No systemd runs in the root: the maintainer
# scripts must cope, as they must in any container.
#
# Environment: SUITE (default bookworm), MIRROR (default: the host's Debian
# mirror from /etc/apt), DEB (default: build one with scripts/package.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "package-test: needs root (debootstrap, chroot)"; exit 1; }
suite=${SUITE:-bookworm}
mirror=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
cache=.cache/debootstrap/$suite

if [ ! -f "$cache/.complete" ]; then
	echo "package-test: debootstrap --variant=minbase $suite from $mirror (once; a few minutes)"
	rm -rf "$cache.tmp" "$cache"
	debootstrap --variant=minbase "$suite" "$cache.tmp" "$mirror" >.cache/debootstrap/$suite.log 2>&1 ||
		{ tail -n 20 .cache/debootstrap/$suite.log; exit 1; }
	touch "$cache.tmp/.complete"
	mv "$cache.tmp" "$cache"
fi

deb=${DEB:-$(bash scripts/package.sh | tail -n1)}
work=$(mktemp -d /tmp/vipd-package-test.XXXXXX)
root=$work/root
mkdir -p "$root" "$work/upper" "$work/work"
cleanup() {
	umount "$root/proc" 2>/dev/null || true
	umount "$root" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
if ! mount -t overlay overlay -o "lowerdir=$PWD/$cache,upperdir=$work/upper,workdir=$work/work" "$root" 2>/dev/null; then
	cp -a "$cache/." "$root/"
fi
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/vipd.deb"

pass=0 fail=0
step() { # WHAT COMMAND... (run in the root)
	local what=$1; shift
	local out
	if out=$(chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c "$*" 2>&1); then
		pass=$((pass + 1)); echo "  ok   $what"; sed 's/^/         /' <<<"$out" | head -n 5
	else
		fail=$((fail + 1)); echo "  FAIL $what"; sed 's/^/         /' <<<"$out" | head -n 30
	fi
}
echo "package-test: $(basename "$deb") into $suite ($root)"
step "dpkg -i (fresh install)" dpkg -i /tmp/vipd.deb
step "vipctl --version" vipctl --version
step "vipd --version" vipd --version
step "vipd --check-config (the shipped /etc/vipd/vipd.toml)" vipd --check-config
step "vipctl config check /etc/vipd/vipd.toml" vipctl config check /etc/vipd/vipd.toml
step "installed: unit, conffile, state dir 0700, man pages" \
	'test -f /lib/systemd/system/vipd.service && dpkg-query -W -f="\${Conffiles}\n" vipd | grep -q /etc/vipd/vipd.toml && [ "$(stat -c %a /var/lib/vipd)" = 700 ] && test -f /usr/share/man/man8/vipd.8.gz && test -f /usr/share/man/man1/vipctl.1.gz'
step "not enabled on a fresh install (the config needs editing first)" '! test -e /etc/systemd/system/multi-user.target.wants/vipd.service'
step "reinstall (postinst configure with the old version)" 'echo "# edited" >>/etc/vipd/vipd.toml && dpkg -i /tmp/vipd.deb'
step "an admin's enable survives the reinstall" 'DPKG_MAINTSCRIPT_PACKAGE=vipd deb-systemd-helper enable vipd.service && dpkg -i /tmp/vipd.deb >/dev/null && test -L /etc/systemd/system/multi-user.target.wants/vipd.service'
step "the operator's config edit survives the reinstall" 'tail -n1 /etc/vipd/vipd.toml | grep -q "# edited"'
step "dpkg -r keeps the conffile" 'dpkg -r vipd && test -f /etc/vipd/vipd.toml && ! test -e /usr/sbin/vipd'
step "dpkg -P removes config, state and the enable link" 'dpkg -P vipd && ! test -e /etc/vipd/vipd.toml && ! test -e /var/lib/vipd && ! test -e /etc/systemd/system/multi-user.target.wants/vipd.service'
echo "package-test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
