#!/usr/bin/env bash
# check-readme.sh - the echo server shown in README.md is examples/echo.c, verbatim
# (the program between the markers "<!-- echo.c begin -->" and "<!-- echo.c end -->"),
# so the README never shows code that no longer builds.
#
# Usage: scripts/check-readme.sh [--fix]   (--fix copies examples/echo.c into README)
set -euo pipefail
cd "$(dirname "$0")/.."

begin='<!-- echo.c begin -->'
end='<!-- echo.c end -->'
grep -qF "$begin" README.md && grep -qF "$end" README.md ||
  { echo "check-readme: README.md lacks the echo.c markers"; exit 1; }

# The README with the block between the markers replaced by examples/echo.c.
expected() {
  awk -v begin="$begin" -v end="$end" '
    $0 == begin { print; print "```c"; while ((getline l < "examples/echo.c") > 0) print l;
                  print "```"; skip = 1; next }
    $0 == end { skip = 0 }
    !skip { print }
  ' README.md
}

if [ "${1:-}" = "--fix" ]; then
  expected >README.md.tmp && mv README.md.tmp README.md
  echo "check-readme: README.md now shows examples/echo.c"
elif expected | diff -u README.md - >/tmp/check-readme.$$ 2>&1; then
  rm -f /tmp/check-readme.$$
  echo "check-readme: README.md shows examples/echo.c as it is"
else
  head -n 40 /tmp/check-readme.$$
  rm -f /tmp/check-readme.$$
  echo "check-readme: README.md's echo server differs from examples/echo.c (fix: scripts/check-readme.sh --fix)"
  exit 1
fi
