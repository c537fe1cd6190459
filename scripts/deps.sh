#!/usr/bin/env bash
# Installs the Debian packages vipd's build, tests and demo need. Idempotent:
# does nothing (not even apt-get update) when everything is already there.
set -euo pipefail
pkgs=(clang llvm libbpf-dev bpftool bird2 gobgpd frr iproute2 ethtool tcpdump
      iputils-ping procps psmisc etcd-server etcd-client nftables
      # building the ignoremtu-patched BIRD (make bird-ignoremtu)
      dpkg-dev flex bison autoconf libssh-gcrypt-dev libreadline-dev libncurses-dev
      # the .deb and its checks (make package, package-test; scripts/package-check.sh)
      lintian help2man groff-base systemd debootstrap
      # alert rules (promtool test rules) and the status page test (headless)
      prometheus chromium fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#pkgs[@]} packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}; run 'make deps' as root" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
# Debian starts the daemons it installs where it can; vipd's tests and lab run
# their own instances with their own sockets and ports.
for svc in bird frr gobgpd prometheus etcd; do
	(service "$svc" stop >/dev/null 2>&1 || true)
done
echo "deps: done"
