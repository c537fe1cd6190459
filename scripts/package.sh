#!/usr/bin/env bash
# make package: build bin/vipd_VERSION_ARCH.deb with nfpm (pinned in go.mod).
# Everything generated goes to bin/pkg/ first: static binaries stamped with
# the version, man pages and completions from the binaries' own help, the
# default config (reference config + a header), the changelog. The build is
# reproducible: every date is the commit's (SOURCE_DATE_EPOCH).
#
#   scripts/package.sh            # prints the .deb's path as the last line
# Environment: VERSION (default from git), ARCH (default go env GOARCH).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=bin/pkg
rm -rf "$stage" bin/vipd_*.deb
mkdir -p "$stage/man" "$stage/man8"

rev=$(git rev-parse --short=12 HEAD)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
if [ -z "${VERSION:-}" ]; then
	if tag=$(git describe --tags --match 'v[0-9]*' --exact-match 2>/dev/null); then
		VERSION=${tag#v}
	else
		# Before the first release tag: sorts by commit time, names the commit.
		VERSION="0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).${rev:0:7}"
	fi
	git diff --quiet HEAD -- . ':!bin' 2>/dev/null || VERSION="$VERSION+dirty"
fi
ARCH=${ARCH:-$(go env GOARCH)}
export VERSION ARCH
echo "package: vipd $VERSION ($ARCH), commit $rev" >&2

pkgpath=github.com/vipd/vipd/internal/buildinfo
# Static (no libc to match on the target), stripped (lintian; the journal's
# goroutine dumps keep function names), no build id or paths: reproducible.
CGO_ENABLED=0 GOARCH=$ARCH go build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= -X $pkgpath.version=$VERSION -X $pkgpath.revision=$rev" \
	-o "$stage/" ./cmd/vipd ./cmd/vipctl

# Help that cannot drift from the binary: cobra's generators for vipctl,
# help2man over 'vipd --help' for vipd. Only when the binaries run here.
if [ "$ARCH" = "$(go env GOHOSTARCH)" ]; then
	"$stage/vipctl" gendocs "$stage/docs"
	for f in "$stage"/docs/man1/*.1; do gzip -9n <"$f" >"$stage/man/$(basename "$f").gz"; done
	mv "$stage/docs/completions" "$stage/completions"
	help2man --no-info --no-discard-stderr --section 8 \
		--name "anycast controller for XDP layer-4 load balancers" \
		--source "vipd $VERSION" --manual "vipd manual" \
		--output "$stage/man8/vipd.8" "$stage/vipd"
	gzip -9n "$stage/man8/vipd.8"
else
	echo "package: cross build: generate man pages and completions on $ARCH" >&2
	exit 1
fi

{ cat packaging/vipd.toml.head; cat examples/vipd.reference.toml; } >"$stage/vipd.toml"
# The shipped config must be one vipd accepts: 'vipd --check-config' is the
# first thing the postinst and the README tell an operator to run.
"$stage/vipd" --check-config -c "$stage/vipd.toml" >&2

cat >"$stage/changelog.Debian" <<EOT
vipd ($VERSION) unstable; urgency=medium

  * Built from commit $rev.

 -- vipd maintainers <maintainers@users.noreply.r-seed-fe39537c.example>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOT
gzip -9n "$stage/changelog.Debian"
gzip -9n <README.md >"$stage/README.md.gz"

go tool nfpm package --config packaging/nfpm.yaml --packager deb --target bin/ >&2
deb="bin/vipd_${VERSION}-1_${ARCH}.deb" # -1: nfpm.yaml's release
[ -f "$deb" ] || { echo "package: nfpm did not write $deb" >&2; ls bin >&2; exit 1; }
echo "$deb"
