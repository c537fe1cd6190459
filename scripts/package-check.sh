#!/usr/bin/env bash
# Checks the vipd .deb the way a distribution would before shipping it, and
# fails on the first thing an operator would trip over. Run by 'make test'
# (scripts/test.sh); builds the package first unless given one.
#
#   scripts/package-check.sh [bin/vipd_VERSION-1_ARCH.deb]
#
# Checks: control fields; the file list (binaries, unit, conffile, state
# dir, man pages for every vipctl command and vipd, completions, docs,
# monitoring files) with owners and modes; conffiles; the binaries run
# (--version names the package version, --check-config accepts the shipped
# config); man pages render without groff warnings; the bash completion
# parses; 'systemd-analyze verify' on the shipped unit; lintian --pedantic
# with info tags, where every tag must be overridden with a reason
# (packaging/lintian-overrides) and every override must still match.
set -uo pipefail
cd "$(dirname "$0")/.."
deb=${1:-}
if [ -z "$deb" ]; then
	deb=$(bash scripts/package.sh | tail -n1) || { echo "package-check: building the package failed"; exit 1; }
fi
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "  ok   $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
echo "package-check: $deb"

x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x/root" && dpkg-deb -e "$deb" "$x/control" || { echo "package-check: cannot unpack $deb"; exit 1; }
version=$(dpkg-deb -f "$deb" Version)

# Control fields.
field() { [ "$(dpkg-deb -f "$deb" "$1")" = "$2" ] || { echo "    $1 is '$(dpkg-deb -f "$deb" "$1")', want '$2'"; return 1; }; }
check "control: Package vipd" field Package vipd
check "control: Architecture $(go env GOARCH)" field Architecture "$(go env GOARCH)"
check "control: Section net, Priority optional" eval 'field Section net && field Priority optional'
check "control: Version has a Debian revision ($version)" eval '[[ $version == *-1 ]]'
check "control: Maintainer and Description set" eval '[ -n "$(dpkg-deb -f "$deb" Maintainer)" ] && [ -n "$(dpkg-deb -f "$deb" Description)" ]'

# Files, with mode and owner as dpkg will install them.
listing=$(dpkg-deb -c "$deb")
has() { # MODE PATH
	grep -qE "^$1 root/root +[0-9]+ [0-9-]+ [0-9:]+ \./${2#/}$" <<<"$listing" || { echo "    want $1 root/root $2"; return 1; }
}
check "vipd in /usr/sbin, vipctl in /usr/bin, 0755" eval 'has -rwxr-xr-x /usr/sbin/vipd && has -rwxr-xr-x /usr/bin/vipctl'
check "systemd units: vipd, the bird-ospf guard" eval 'has -rw-r--r-- /lib/systemd/system/vipd.service && has -rw-r--r-- /lib/systemd/system/vipd-bird-guard.service'
check "default config 0640 (may hold BGP passwords)" has -rw-r----- /etc/vipd/vipd.toml
check "state directory /var/lib/vipd 0700" has drwx------ /var/lib/vipd/
check "completions: bash, zsh, fish" eval 'has -rw-r--r-- /usr/share/bash-completion/completions/vipctl && has -rw-r--r-- /usr/share/zsh/vendor-completions/_vipctl && has -rw-r--r-- /usr/share/fish/vendor_completions.d/vipctl.fish'
check "docs: copyright, changelog, README, bird-ospf drop-ins" eval 'has -rw-r--r-- /usr/share/doc/vipd/copyright && has -rw-r--r-- /usr/share/doc/vipd/changelog.Debian.gz && has -rw-r--r-- /usr/share/doc/vipd/README.md.gz && has -rw-r--r-- /usr/share/doc/vipd/examples/bird-ospf.conf && has -rw-r--r-- /usr/share/doc/vipd/examples/bird-vipd.conf'
check "monitoring: alert rules and dashboard" eval 'has -rw-r--r-- /usr/share/vipd/monitoring/vipd-alerts.yml && has -rw-r--r-- /usr/share/vipd/monitoring/vipd-dashboard.json'
check "nothing outside the expected trees" eval '! grep -vE " \./(etc/vipd/|lib/systemd/system/|usr/(s?bin|share/(man|doc/vipd|bash-completion|zsh|fish|lintian|vipd))/|usr/share/doc/$|var/lib/vipd/|usr/$|usr/share/$|lib/$|lib/systemd/$|etc/$|var/$|var/lib/$)" <<<"$listing"'

# Conffiles: the config and nothing else (the unit is not a conffile:
# operators use drop-ins).
check "conffiles: exactly /etc/vipd/vipd.toml" eval '[ "$(cat "$x/control/conffiles")" = /etc/vipd/vipd.toml ]'

# The binaries as installed.
r=$x/root
check "vipd --version names $version" eval '"$r/usr/sbin/vipd" --version | grep -qF "vipd ${version%-1} "'
check "vipctl --version names $version" eval '"$r/usr/bin/vipctl" --version | grep -qF "vipctl ${version%-1} "'
check "vipd --check-config accepts the shipped config" eval '"$r/usr/sbin/vipd" --check-config -c "$r/etc/vipd/vipd.toml" >/dev/null'
check "vipd --check-config rejects a broken one (exit 1, FILE:LINE)" eval 'printf "[node]\nnmae = 1\n" >"$x/bad.toml"; out=$("$r/usr/sbin/vipd" --check-config -c "$x/bad.toml" 2>&1); [ $? = 1 ] && grep -q "bad.toml:2" <<<"$out"'

# Man pages: one per vipctl command (cobra's tree, from the binary itself),
# and vipd(8); each renders without warnings.
want=$("$r/usr/bin/vipctl" gendocs "$x/docs" && ls "$x/docs/man1" | sort)
got=$(cd "$r/usr/share/man/man1" && ls | sed 's/\.gz$//' | sort)
check "a man page for every vipctl command ($(wc -l <<<"$want"))" eval '[ "$want" = "$got" ]'
check "vipd(8)" test -f "$r/usr/share/man/man8/vipd.8.gz"
manwarn() {
	local f w
	for f in "$r"/usr/share/man/man1/*.gz "$r"/usr/share/man/man8/*.gz; do
		w=$(zcat "$f" | groff -man -Tutf8 -ww -z 2>&1) || true
		[ -z "$w" ] || { echo "    $f: $w"; return 1; }
	done
}
check "man pages render without groff warnings" manwarn
check "vipd(8) documents every flag (-check-config, -shutdown-timeout)" eval 'zcat "$r/usr/share/man/man8/vipd.8.gz" | grep -q "check\\\\-config" && zcat "$r/usr/share/man/man8/vipd.8.gz" | grep -q "shutdown\\\\-timeout"'
check "bash completion parses" bash -n "$r/usr/share/bash-completion/completions/vipctl"

# The unit, verified offline against the binary it starts (systemd-analyze
# checks ExecStart exists and is executable, so point it at the unpacked
# one; man: links are checked above).
mkdir -p "$x/unit"
sed "s|/usr/sbin/vipd|$r/usr/sbin/vipd|g" "$r/lib/systemd/system/vipd.service" >"$x/unit/vipd.service"
sed "s|/usr/bin/vipctl|$r/usr/bin/vipctl|g" "$r/lib/systemd/system/vipd-bird-guard.service" >"$x/unit/vipd-bird-guard.service"
printf '[Service]\nExecStart=/bin/true\n' >"$x/unit/bird.service"
check "systemd-analyze verify vipd-bird-guard.service" eval 'out=$(SYSTEMD_UNIT_PATH="$x/unit:" systemd-analyze verify --man=no "$x/unit/vipd-bird-guard.service" 2>&1); [ -z "$out" ] || { echo "$out" | sed "s/^/    /"; false; }'
check "systemd-analyze verify vipd.service" eval 'out=$(systemd-analyze verify --man=no "$x/unit/vipd.service" 2>&1); [ -z "$out" ] || { echo "$out" | sed "s/^/    /"; false; }'
exposure=$(systemd-analyze security --offline=true "$x/unit/vipd.service" 2>/dev/null | sed -n 's/.*Overall exposure level for vipd.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security: exposure ${exposure:-?} <= 6.0" eval 'awk -v e="${exposure:-99}" "BEGIN{exit !(e <= 6.0)}"'

# lintian: every tag overridden with a reason, every override still used.
lint=$(lintian --pedantic -I -E --fail-on none "$deb" 2>&1 | grep -E '^[EWIPX]: ' || true)
check "lintian --pedantic: no tag without a justified override" eval '[ -z "$lint" ] || { echo "$lint" | sed "s/^/    /"; false; }'

echo "package-check: $pass checks passed, $fail failed"
[ "$fail" -eq 0 ]
