#!/usr/bin/env bash
# exports.sh - what libekiden.so offers the dynamic linker: its SONAME follows the
# major version; it exports ek_* functions only, each under a version node of the
# linker script (capi/ekiden.map), nothing internal (ek__*); and every function
# the public headers declare is really exported, since FFI hosts look each one up
# by name.
#
# Usage: tests/install/exports.sh path/to/libekiden.so path/to/include [path/to/ekiden.map]
set -euo pipefail

so=${1:?usage: exports.sh LIBEKIDEN_SO INCLUDE_DIR}
inc=${2:?usage: exports.sh LIBEKIDEN_SO INCLUDE_DIR}
work=$(mktemp -d "${TMPDIR:-/tmp}/ekiden-exports.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

soname=$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = libekiden.so.0 ] && ok "SONAME $soname" || bad "SONAME is '$soname', want libekiden.so.0"

# Defined dynamic symbols, without the version node entries (type A, e.g. EKIDEN_0.1).
nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }' >"$work/exports"
grep -v '^ek_' "$work/exports" >"$work/foreign" || true
grep '^ek__' "$work/exports" >"$work/internal" || true
grep '^ek_' "$work/exports" | grep -v '@@\?EKIDEN_' >"$work/unversioned" || true
if [ -s "$work/foreign" ] || [ -s "$work/internal" ]; then
  bad "exports other than the public ek_* API:"
  cat "$work/foreign" "$work/internal" | head -n 30 | sed 's/^/    /'
else
  ok "exports only ek_* ($(wc -l <"$work/exports") symbols)"
fi
if [ -s "$work/unversioned" ]; then
  bad "exports without a version node (EKIDEN_x.y):"
  head -n 30 "$work/unversioned" | sed 's/^/    /'
else
  ok "every export carries a version node"
fi

# Every function the headers declare (EK_EXTERN ... ek_name(...)) is exported.
sed 's/@.*//' "$work/exports" | sort -u >"$work/names"
cat "$inc/ekiden.h" "$inc"/ekiden/*.h 2>/dev/null | tr '\n' ' ' |
  grep -o 'EK_EXTERN[^;(]*(' | grep -o 'ek_[a-z0-9_]*[[:space:]]*($' | tr -d ' (' |
  sort -u >"$work/declared"
comm -23 "$work/declared" "$work/names" >"$work/missing"
if [ -s "$work/missing" ]; then
  bad "$(wc -l <"$work/missing") of $(wc -l <"$work/declared") functions declared in the headers are not exported:"
  fmt -w 96 "$work/missing" | sed 's/^/    /'
else
  ok "all $(wc -l <"$work/declared") functions declared in the headers are exported"
fi
comm -13 "$work/declared" "$work/names" >"$work/undeclared"
if [ -s "$work/undeclared" ]; then
  bad "exported but declared in no public header: $(tr '\n' ' ' <"$work/undeclared")"
else
  ok "every export is declared in a public header"
fi

# The version script lists every declared function by name, once, in a node
# named EKIDEN_<major>.<minor> (no glob such as ek_*), and names nothing else.
map=${3:-$(cd "$inc/.." && pwd)/ekiden.map}
if [ -f "$map" ]; then
  perl -0pe 's{/\*.*?\*/}{}gs' "$map" >"$work/map"
  globs=$(grep -E '\*' "$work/map" | grep -Ev '^[[:space:]]*\*;[[:space:]]*$' | tr -d ' ' || true)
  [ -z "$globs" ] && ok "the version script names its symbols (no glob)" ||
    bad "the version script uses a glob instead of names: $globs"
  nodes=$(grep -Eo '^[[:space:]]*[A-Za-z0-9_.]+[[:space:]]*\{' "$work/map" | tr -d ' {')
  badnodes=$(echo "$nodes" | grep -Ev '^EKIDEN_[0-9]+\.[0-9]+$' || true)
  [ -z "$badnodes" ] && ok "version nodes: $(echo $nodes)" || bad "version nodes not named EKIDEN_x.y: $badnodes"
  grep -Eo '^[[:space:]]*ek_[a-z0-9_]+;' "$work/map" | tr -d ' ;' >"$work/listed"
  sort "$work/listed" | uniq -d >"$work/dups"
  [ -s "$work/dups" ] && bad "listed twice in $map: $(tr '\n' ' ' <"$work/dups")" ||
    ok "$(wc -l <"$work/listed") names in the version script, none twice"
  sort -u "$work/listed" >"$work/listed.sorted"
  comm -23 "$work/declared" "$work/listed.sorted" >"$work/unlisted"
  [ -s "$work/unlisted" ] &&
    bad "declared EK_EXTERN but not in $map (add them to the current node): $(tr '\n' ' ' <"$work/unlisted")" ||
    ok "every declared function is in the version script"
  comm -13 "$work/declared" "$work/listed.sorted" >"$work/stale"
  [ -s "$work/stale" ] && bad "in $map but declared in no public header: $(tr '\n' ' ' <"$work/stale")" ||
    ok "the version script names only declared functions"
else
  bad "no version script at $map"
fi

[ "$fails" -eq 0 ] || { echo "exports: $fails failures"; exit 1; }
echo "exports: all checks passed"
