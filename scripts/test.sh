#!/usr/bin/env bash
# Runs every test with the race detector. Under CI=true a skipped test fails
# the run: CI is root, so a privileged test that skips there hides a broken rig.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
log=.cache/test-output.txt
echo "test: go test -race ./... (full log in $log)"
go test -race -count=1 -timeout 20m -v ./... >"$log" 2>&1
rc=$?
# Package results and failures, not the whole verbose log.
grep -E '^(ok|FAIL|\?|panic:|--- FAIL|--- SKIP)|^\s+--- (FAIL|SKIP)|^vip property test:|^lab property test:|^e2e package:' "$log" || true
if [ $rc -ne 0 ]; then
	# A failing test's messages come before its "--- FAIL" line (go test -v
	# streams them), so show its own message lines first, then the context.
	echo "test: failures; each failed test's messages:"
	awk '/^=== (RUN|CONT|PAUSE|NAME)/ { buf = "" } /^ +[A-Za-z0-9_]+_test\.go:[0-9]+: |^        \t/ { buf = buf $0 "\n" } /^ *--- FAIL/ { printf "%s%s\n", buf, $0; buf = "" }' "$log" | cut -c1-2000 | head -150
	echo "test: the end of the log around each failure:"
	grep -B2 -A30 -E -- '--- FAIL|^panic:' "$log" | head -200
fi
# The .deb: built with nfpm, checked with dpkg-deb, systemd-analyze verify
# and lintian (scripts/package-check.sh); its checks count as tests.
pkglog=.cache/package-check.txt
echo "test: package checks (full log in $pkglog)"
bash scripts/package-check.sh >"$pkglog" 2>&1 || rc=1
grep -E '^  FAIL|^    |^package-check: [0-9]' "$pkglog" | head -60
pkg_passed=$(grep -cE '^  ok ' "$pkglog")
pkg_failed=$(grep -cE '^  FAIL ' "$pkglog")
if ! grep -qE '^package-check: [0-9]' "$pkglog"; then
	echo "test: the package check did not finish:"; tail -n 20 "$pkglog"
	pkg_failed=$((pkg_failed + 1))
fi
passed=$(grep -cE -- '--- PASS' "$log")
failed=$(grep -cE -- '--- FAIL' "$log")
skipped=$(grep -cE -- '--- SKIP' "$log")
if [ "${CI:-}" = "true" ] && [ "$skipped" -gt 0 ]; then
	echo "test: $skipped test(s) skipped under CI=true: CI is root, privileged tests must run"
	grep -E -- '--- SKIP' -A2 "$log" | head -40
	rc=1
fi
passed=$((passed + pkg_passed))
failed=$((failed + pkg_failed))
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $rc
