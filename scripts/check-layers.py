#!/usr/bin/env python3
"""check-layers.py - no #include or call cycle between the folders of core/.

Every `#include "..."` in core/**/*.{c,h} that names another file of core/ (as
written relative to the including file, or to core/ itself, the include path)
is an edge from the including file's folder to the included file's folder
(core/ itself is the folder "."). So is every call of an `ek_`/`ek__` function
whose body is in another folder only (a definition in a .c file, or an inline
one in a header): a header that only declares a function another folder
defines hides a call back up, which the include edges alone do not show (the
driver calling the scheduler's ek__rt_check through core/rt.h, say). Calls
through function pointers (a callback the layer above handed down) are not
edges, which is the point. Any cycle in that graph fails the check: includes
and calls must point one way (DESIGN: net/sync/time above the scheduler, the
scheduler above task), so that a folder can be read, tested and replaced
without the ones above it.

KNOWN lists the folder cycles that exist today and are being removed, each
with the issue that removes it: a cycle of exactly those folders passes with a
note (any new edge that pulls another folder into it fails), and a known cycle
that no longer exists is reported so that it can be deleted from the list. It
is empty: the last one (task <-> sched <-> driver <-> time, issue 7) is gone,
its calls back up included (they now read the runtime's handle, core/rt.h, or
call a callback the scheduler set there), and the graph is one-way (task at
the bottom, then time, driver, sched, and net, sync, service above them).

Usage: scripts/check-layers.py [CORE_DIR]   (default: core/ beside scripts/)
       scripts/check-layers.py --self-test  (the check fails on an include cycle
                                             and on a call cycle made in a
                                             temporary tree, passes without them)
Prints the folder graph; exits 1 on a cycle.
"""
import os
import re
import sys
import tempfile

KNOWN = {}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
# A function definition: at the start of a line, a declarator naming an ek_
# function, its parameter list, then a body (checked after the match).
DEFINITION = re.compile(r'^[A-Za-z_][^;{}()#=]*?\b(ek_\w+)\s*\(', re.M)
CALL = re.compile(r'\b(ek_\w+)\s*\(')
NOISE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
DIRECTIVE = re.compile(r'^\s*#(?:[^\n]*\\\n)*[^\n]*', re.M)


def code_of(text):
    """The text without comments, string and character literals, or
    preprocessor lines (a macro's body is no call site of its own; where it is
    used, its arguments are), newlines kept so that line numbers stay."""
    keep = lambda m: re.sub(r'[^\n]', ' ', m.group(0))
    return DIRECTIVE.sub(keep, NOISE.sub(keep, text))


def close_paren(code, i):
    """Index just past the parenthesis that closes the one at code[i]."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == '(':
            depth += 1
        elif code[j] == ')':
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def sources(core):
    for d, _, files in os.walk(core):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                path = os.path.join(d, f)
                with open(path, encoding="utf-8") as fh:
                    yield path, code_of(fh.read())


def call_edges(core, edges):
    """Add an edge for every call into a function defined only in other
    folders (see the module's comment)."""
    defined, bodies = {}, {}
    for path, code in sources(core):
        folder = folder_of(core, path)
        for m in DEFINITION.finditer(code):
            # A declarator (a definition's or a prototype's) is no call.
            bodies.setdefault(path, set()).add(m.start(1))
            end = close_paren(code, m.end() - 1)
            if code[end:end + 200].lstrip().startswith('{'):
                defined.setdefault(m.group(1), set()).add(folder)
    for path, code in sources(core):
        a = folder_of(core, path)
        for m in CALL.finditer(code):
            if m.start(1) in bodies.get(path, ()):
                continue
            where = defined.get(m.group(1), set())
            if not where or a in where:
                continue
            line = code.count('\n', 0, m.start()) + 1
            for b in sorted(where):
                sites = edges.setdefault((a, b), [])
                called = " calls %s" % m.group(1)
                # The first call of each name is enough to find the rest.
                if not any(x.endswith(called) for x in sites):
                    sites.append("%s:%d%s" % (os.path.relpath(path, core), line, called))


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
    call_edges(core, edges)
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
    relative) must fail; without the back edge it must pass. Then the same
    with the back edge made of a call alone: b calls a function that a defines,
    through a header at core/ that only declares it (the include edges run
    b -> . and a -> b only); a callback handed down instead of the call passes."""
    status = include_self_test()
    with tempfile.TemporaryDirectory() as core:
        files = {
            "common.h": "",
            "up.h": "void ek__a_thing(void);\n",
            "a/x.c": '#include "../b/y.h"\n#include "up.h"\n'
                     'void ek__a_thing(void)\n{\n    ek__b_thing();\n}\n',
            "b/y.h": "void ek__b_thing(void);\n",
            "b/y.c": '#include "../up.h"\n/* ek__a_thing() in a comment is no call */\n'
                     'void ek__b_thing(void)\n{\n    ek__a_thing();\n}\n',
        }
        write_tree(core, files)
        with_call = check(core)
        write_tree(core, {"b/y.c": '#include "../up.h"\nvoid (*ek__b_hook)(void);\n'
                                   'void ek__b_thing(void)\n{\n    ek__b_hook();\n}\n'})
        without = check(core)
    ok = with_call == 1 and without == 0
    print("layers: call self-test %s (a call cycle: exit %d, a callback: exit %d)"
          % ("passed" if ok else "FAILED", with_call, without))
    return status if ok else 1


def write_tree(core, files):
    for name, text in files.items():
        os.makedirs(os.path.join(core, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(core, name), "w", encoding="utf-8") as fh:
            fh.write(text)


def include_self_test():
    with tempfile.TemporaryDirectory() as core:
        files = {
            "common.h": "",
            "a/x.c": '#include "../b/y.h"\n#include "common.h"\n',
            "b/y.h": '#include "a/z.h"\n',
            "a/z.h": "",
        }
        write_tree(core, files)
        with_cycle = check(core)
        write_tree(core, {"b/y.h": '#include "../common.h"\n'})
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
            print("layers: FAIL: an include or call cycle between %s:" % ", ".join(comp))
        for a, b in inside:
            print("  %s -> %s (%s)" % (a, b, ", ".join(edges[(a, b)])))
    for key in sorted(set(KNOWN) - found):
        print("layers: note: the known cycle %s is gone; delete it from KNOWN in %s"
              % (" <-> ".join(key), os.path.relpath(__file__)))
    if status == 0:
        print("layers: no include or call cycle between the folders of core/%s"
              % (" other than the known one(s) above" if found else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
