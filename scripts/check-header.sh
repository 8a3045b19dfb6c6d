#!/usr/bin/env bash
# check-header.sh - the public header stands alone: it compiles as the only include
# of a translation unit as C11 -pedantic -Werror, and as C++17 (C++ hosts include
# it too), with every warning on.
set -euo pipefail
cd "$(dirname "$0")/.."

cc=${CC:-cc}
cxx=${CXX:-c++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include "ekiden.h"\nint main(void) { return EK_OK; }\n' >"$tmp/h.c"
cp "$tmp/h.c" "$tmp/h.cpp"

status=0
if "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -Icapi/include -fsyntax-only "$tmp/h.c"; then
  echo "check-header: ekiden.h alone compiles as C11 -pedantic -Werror"
else
  echo "check-header: ekiden.h does not compile alone as C11 -pedantic -Werror"
  status=1
fi
if "$cxx" -std=c++17 -pedantic -Wall -Wextra -Werror -Icapi/include -fsyntax-only "$tmp/h.cpp"; then
  echo "check-header: ekiden.h alone compiles as C++17 -pedantic -Werror"
else
  echo "check-header: ekiden.h does not compile alone as C++17 -pedantic -Werror"
  status=1
fi
exit $status
