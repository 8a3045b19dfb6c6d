#!/usr/bin/env python3
"""gen-cdef.py - the public header as declarations an FFI parser accepts.

cffi's cdef() and LuaJIT's ffi.cdef() take plain C declarations only: no
preprocessor directives, no attributes, no X-macros, no expression macros.
This script turns capi/include/ekiden.h (and the parts it includes) into such
a file:

- declarations: the C preprocessor expands the header (X-macro tables become
  plain enums) with empty stand-ins for the system headers, so size_t and the
  fixed-width integer types stay the FFI's own builtins; attributes
  (EK_EXTERN) are removed;
- constants: every object-like `#define EK_NAME value` whose value is an
  integer expression (literals, other constants, SIZE_MAX, arithmetic) becomes
  an anonymous enum member with the evaluated value, which both FFIs read as a
  constant (character constants such as '$' count as integers). Values outside 32 bits are left out (LuaJIT only takes 32-bit
  constants) and named in a comment.

Usage:
  gen-cdef.py [--include DIR] [--cc CC] [-o OUT]     write the cdef
  gen-cdef.py --check-exports LIB CDEF               compare the functions the
      cdef declares with the ek_* functions LIB exports (nm -D); exit 1 and
      say which differ.
Only the Python standard library and a C compiler are needed.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_INCLUDE = HERE.parent / "capi" / "include"
MAIN_HEADER = "ekiden.h"
SYSTEM_HEADERS = ("stddef.h", "stdint.h", "stdbool.h")
SIZE_MAX = (1 << 64) - 1 if sys.maxsize > 2**32 else (1 << 32) - 1


def headers(include: Path) -> list[Path]:
    """ekiden.h and every header under include/ekiden/, in a stable order."""
    parts = sorted((include / "ekiden").glob("*.h")) if (include / "ekiden").is_dir() else []
    return [include / MAIN_HEADER] + parts


def strip_attributes(text: str) -> str:
    """Remove every __attribute__((...)) (balanced parentheses)."""
    out = []
    i = 0
    key = "__attribute__"
    while True:
        j = text.find(key, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = j + len(key)
        while k < len(text) and text[k].isspace():
            k += 1
        depth = 0
        while k < len(text):
            if text[k] == "(":
                depth += 1
            elif text[k] == ")":
                depth -= 1
                if depth == 0:
                    k += 1
                    break
            k += 1
        while k < len(text) and text[k] in " \t":
            k += 1
        i = k


def preprocess(include: Path, cc: str) -> str:
    with tempfile.TemporaryDirectory() as fake:
        for name in SYSTEM_HEADERS:
            Path(fake, name).write_text("")
        cmd = shlex.split(cc) + ["-E", "-P", "-nostdinc", "-I", fake, "-I", str(include),
                                 str(include / MAIN_HEADER)]
        res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    text = strip_attributes(res.stdout)
    # One declaration per line is easier to read and to diff.
    lines = [ln.rstrip() for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip()) + "\n"


_INT = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b")
_CHAR = re.compile(r"'([^'\\])'")  # a plain character constant: '$'
_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def _eval(expr: str, known: dict[str, int]) -> int | None:
    """An integer constant expression, or None when it is anything else."""
    expr = _CHAR.sub(lambda m: str(ord(m.group(1))), expr)
    expr = _INT.sub(lambda m: str(int(m.group(1), 0)), expr)
    missing = False

    def name(m: re.Match[str]) -> str:
        nonlocal missing
        n = m.group(0)
        if n in known:
            return str(known[n])
        if n == "SIZE_MAX":
            return str(SIZE_MAX)
        missing = True
        return n

    expr = _NAME.sub(name, expr)
    if missing or not expr.strip():
        return None
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.operator, ast.unaryop)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            return None
        if isinstance(node, ast.Constant) and not isinstance(node.value, int):
            return None
    try:
        value = eval(compile(tree, "<macro>", "eval"), {"__builtins__": {}})  # noqa: S307
    except (ArithmeticError, ValueError):
        return None
    return value if isinstance(value, int) else None


def constants(include: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(name, value) of the integer constant macros, and the names left out."""
    known: dict[str, int] = {}
    order: list[str] = []
    omitted: list[str] = []
    for path in headers(include):
        text = path.read_text()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        text = text.replace("\\\n", " ")
        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(EK_[A-Z0-9_]*)(\(?)(.*)$", text, re.M):
            name, paren, body = m.group(1), m.group(2), m.group(3).strip()
            if paren or name.startswith("EK__") or not body:
                continue
            value = _eval(body, known)
            if value is None:
                continue
            known[name] = value
            if -(2**31) <= value < 2**31:
                order.append(name)
            else:
                omitted.append(name)
    return [(n, known[n]) for n in order], omitted


def generate(include: Path, cc: str) -> str:
    consts, omitted = constants(include)
    out = [
        "/* ekiden.cdef - generated by scripts/gen-cdef.py from capi/include/ekiden.h.",
        " * Plain declarations for cffi's cdef() and LuaJIT's ffi.cdef(). Do not edit. */",
        "",
        "/* Constants (the header's integer #defines). */",
        "enum {",
    ]
    out += [f"    {n} = {v}," for n, v in consts]
    out.append("};")
    if omitted:
        out.append("/* Left out (do not fit 32 bits): " + ", ".join(omitted) + ". */")
    out.append("")
    out.append(preprocess(include, cc))
    return "\n".join(out)


def declared_functions(cdef: str) -> set[str]:
    """Names of the functions the cdef declares (not function-pointer typedefs)."""
    names = set()
    for m in re.finditer(r"\b(ek_[A-Za-z0-9_]+)\s*\(", cdef):
        start = cdef.rfind("\n", 0, m.start()) + 1
        line = cdef[start : m.start()]
        if "typedef" in line or "(*" in line:
            continue
        names.add(m.group(1))
    # Parameters of function-pointer type inside prototypes look like calls too;
    # a declaration always follows a type, never an opening parenthesis.
    return names


def exported_functions(lib: str) -> set[str]:
    res = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         stdout=subprocess.PIPE, text=True)
    names = set()
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("T", "t", "W", "i"):
            name = parts[2].split("@")[0]
            if name.startswith("ek_"):
                names.add(name)
    return names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--include", type=Path, default=DEFAULT_INCLUDE)
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("-o", "--output", type=Path)
    ap.add_argument("--check-exports", nargs=2, metavar=("LIB", "CDEF"))
    args = ap.parse_args()
    if args.check_exports:
        lib, cdef_path = args.check_exports
        declared = declared_functions(Path(cdef_path).read_text())
        exported = exported_functions(lib)
        ok = True
        for n in sorted(declared - exported):
            print(f"gen-cdef: declared but not exported by {lib}: {n}", file=sys.stderr)
            ok = False
        for n in sorted(exported - declared):
            print(f"gen-cdef: exported but not in the cdef: {n}", file=sys.stderr)
            ok = False
        print(f"gen-cdef: {len(declared)} functions declared, {len(exported)} exported")
        return 0 if ok else 1
    text = generate(args.include, args.cc)
    if args.output:
        tmp = args.output.with_suffix(args.output.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
