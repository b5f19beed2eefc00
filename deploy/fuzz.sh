#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of the module, one after another, each
# for FUZZTIME. The targets are found, not listed: every `func FuzzX(f
# *testing.F)` in a *_test.go file, so a new target is run without editing
# anything here or in the Makefile.
#
# Usage: deploy/fuzz.sh
#
# Environment:
#   FUZZTIME          how long each target runs (default 30s; go test's
#                     -fuzztime: a duration, or Nx for N inputs)
#   FUZZMINIMIZETIME  how long one input is minimized (default 5s): go's
#                     default of 60 s stalls short runs on every new
#                     interesting input
#   FUZZ              a regular expression: run only the targets whose
#                     "package/FuzzName" matches (default: all)
#   GO                the go command (default go)
#
# A crasher fails its target, is written by go to the package's
# testdata/fuzz/<FuzzName>/ and from then on runs as a regression test in
# plain `go test`; the remaining targets still run, and the script exits 1
# after a summary.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
go=${GO:-go}
fuzztime=${FUZZTIME:-30s}
minimize=${FUZZMINIMIZETIME:-5s}
filter=${FUZZ:-}

# "./dir FuzzName" per target, sorted for a stable order.
mapfile -t targets < <(
	grep -rE --include='*_test.go' --exclude-dir='.?*' --exclude-dir=testdata --exclude-dir=vendor \
		-o '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
		sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*$|\1 \2|' |
		sort -u
)
if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

failed=()
ran=0
start=$SECONDS
for t in "${targets[@]}"; do
	dir=${t% *}
	name=${t#* }
	if [ -n "$filter" ] && ! [[ "${dir#./}/$name" =~ $filter ]]; then
		continue
	fi
	ran=$((ran + 1))
	echo "=== fuzz $dir $name for $fuzztime"
	if ! "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$dir"; then
		failed+=("$dir $name")
	fi
done

if [ "$ran" -eq 0 ]; then
	echo "fuzz.sh: no fuzz target matches FUZZ=$filter" >&2
	exit 1
fi
echo "=== fuzz: $ran targets, $((SECONDS - start)) s, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
	printf '  FAIL %s\n' "${failed[@]}"
	echo "Crashers are in each package's testdata/fuzz/; rerun one with: go test -run 'FuzzName/<file>' ./pkg"
	exit 1
fi
