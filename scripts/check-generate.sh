#!/usr/bin/env bash
# Regenerates the bpf2go output and fails if it differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls dataplane/*_bpfel.go >/dev/null 2>&1; then
	echo "check-generate: no bpf2go output yet"; exit 0
fi
go generate ./dataplane/...
if ! git diff --quiet -- dataplane; then
	echo "check-generate: 'go generate ./dataplane/...' changed committed files:" >&2
	git diff --stat -- dataplane >&2
	exit 1
fi
if [ -n "$(git status --porcelain -- dataplane)" ]; then
	echo "check-generate: 'go generate' produced files that are not committed:" >&2
	git status --porcelain -- dataplane >&2
	exit 1
fi
echo "check-generate: bpf2go output is up to date"
