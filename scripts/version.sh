# Sourced by scripts/package.sh and the Makefile's build: sets rev (the
# commit), SOURCE_DATE_EPOCH (its time) and VERSION (the release tag without
# its v, or 0.0~gitDATE.COMMIT before the first tag; +dirty with local
# changes), unless VERSION is already set. Outside a git checkout (a source
# tarball): rev "unknown" and VERSION "devel".
if rev=$(git rev-parse --short=12 HEAD 2>/dev/null); then
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
else
	rev=unknown
	VERSION=${VERSION:-devel}
	export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
fi
