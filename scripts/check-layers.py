#!/usr/bin/env python3
"""check-layers.py - no #include cycle between the folders of core/.

Every `#include "..."` in core/**/*.{c,h} that names another file of core/ (as
written relative to the including file, or to core/ itself, the include path)
is an edge from the including file's folder to the included file's folder
(core/ itself is the folder "."). Any cycle in that graph fails the check:
includes must point one way (DESIGN: net/sync/time above the scheduler, the
scheduler above task), so that a folder can be read, tested and replaced
without the ones above it.

KNOWN lists the folder cycles that exist today and are being removed, each
with the issue that removes it: a cycle of exactly those folders passes with a
note (any new edge that pulls another folder into it fails), and a known cycle
that no longer exists is reported so that it can be deleted from the list. It
is empty: the last one (task <-> sched <-> driver <-> time, issue 7) is gone,
and the graph is one-way (task at the bottom, then time, driver, sched, and
net, sync, service above them).

Usage: scripts/check-layers.py [CORE_DIR]   (default: core/ beside scripts/)
       scripts/check-layers.py --self-test  (the check fails on a cycle made in
                                             a temporary tree, passes without it)
Prints the folder graph; exits 1 on a cycle.
"""
import os
import re
import sys
import tempfile

KNOWN = {}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(core, path):
    return os.path.dirname(os.path.relpath(path, core)) or "."


def edges_of(core):
    edges = {}
    for d, _, files in os.walk(core):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(d, f)
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    for base in (d, core):
                        target = os.path.normpath(os.path.join(base, m.group(1)))
                        if os.path.isfile(target):
                            break
                    else:
                        continue
                    if not target.startswith(os.path.normpath(core) + os.sep):
                        continue
                    a, b = folder_of(core, path), folder_of(core, target)
                    if a != b:
                        where = "%s:%d" % (os.path.relpath(path, core), n)
                        edges.setdefault((a, b), []).append(where)
    return edges


def cycles(nodes, succ):
    """Strongly connected components with more than one folder (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def self_test():
    """A tree with a -> b -> a (one edge through the core/ include path, one
    relative) must fail; without the back edge it must pass."""
    with tempfile.TemporaryDirectory() as core:
        files = {
            "common.h": "",
            "a/x.c": '#include "../b/y.h"\n#include "common.h"\n',
            "b/y.h": '#include "a/z.h"\n',
            "a/z.h": "",
        }
        for name, text in files.items():
            os.makedirs(os.path.join(core, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(core, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        with_cycle = check(core)
        os.remove(os.path.join(core, "b/y.h"))
        with open(os.path.join(core, "b/y.h"), "w", encoding="utf-8") as fh:
            fh.write('#include "../common.h"\n')
        without = check(core)
    ok = with_cycle == 1 and without == 0
    print("layers: self-test %s (a cycle: exit %d, none: exit %d)"
          % ("passed" if ok else "FAILED", with_cycle, without))
    return 0 if ok else 1


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    core = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "core")
    return check(core)


def check(core):
    edges = edges_of(core)
    nodes = {a for a, _ in edges} | {b for _, b in edges}
    succ = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)
    for a in sorted(succ):
        print("layers: %s -> %s" % (a, ", ".join(sorted(succ[a]))))

    status = 0
    found = set()
    for comp in cycles(nodes, succ):
        inside = sorted((a, b) for (a, b) in edges if a in comp and b in comp)
        key = tuple(comp)
        found.add(key)
        if key in KNOWN:
            print("layers: note: known cycle %s: %s" % (" <-> ".join(comp), KNOWN[key]))
        else:
            status = 1
            print("layers: FAIL: include cycle between %s:" % ", ".join(comp))
        for a, b in inside:
            print("  %s -> %s (%s)" % (a, b, ", ".join(edges[(a, b)])))
    for key in sorted(set(KNOWN) - found):
        print("layers: note: the known cycle %s is gone; delete it from KNOWN in %s"
              % (" <-> ".join(key), os.path.relpath(__file__)))
    if status == 0:
        print("layers: no include cycle between the folders of core/%s"
              % (" other than the known one(s) above" if found else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
