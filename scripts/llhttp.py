#!/usr/bin/env python3
"""llhttp.py - the llhttp C sources for builds that are not CMake's.

    scripts/llhttp.py DEST     prints the folder holding llhttp.h, llhttp.c, api.c
                               and http.c, fetching them first if needed

A system llhttp is not looked for here (the Python build and the fuzz build compile
the sources in, as CMake does when the system has none). The source distribution
named in scripts/llhttp.pin is downloaded into DEST (once: a tarball already there
with the right hash is reused; so is CMake's copy in build/_deps), checked against
the pinned SHA-256 and its lib/ extracted into DEST/llhttp-<version>/lib.
EKIDEN_LLHTTP_TARBALL=path uses a local copy of the tarball instead of the network.
Standard library only.
"""
import hashlib
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("llhttp.h", "llhttp.c", "api.c", "http.c")


def pin() -> dict:
    out = {}
    for line in (ROOT / "scripts" / "llhttp.pin").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lib_dir(dest: Path) -> Path:
    p = pin()
    dest = Path(dest)
    lib = dest / f"llhttp-{p['version']}" / "lib"
    if all((lib / f).is_file() for f in FILES):
        return lib
    dest.mkdir(parents=True, exist_ok=True)
    tarball = dest / f"llhttp-{p['version']}.tar.gz"
    candidates = [Path(os.environ["EKIDEN_LLHTTP_TARBALL"])] if os.environ.get("EKIDEN_LLHTTP_TARBALL") else []
    candidates += [tarball, ROOT / "build" / "_deps" / tarball.name]
    src = next((c for c in candidates if c.is_file() and _sha256(c) == p["sha256"]), None)
    if src is None:
        tmp = tarball.with_suffix(".part")
        with urllib.request.urlopen(p["url"], timeout=120) as r, open(tmp, "wb") as f:
            f.write(r.read())
        got = _sha256(tmp)
        if got != p["sha256"]:
            tmp.unlink()
            raise SystemExit(f"llhttp.py: {p['url']}: SHA-256 {got}, expected {p['sha256']}")
        tmp.replace(tarball)
        src = tarball
    with tarfile.open(src) as t:
        top = f"llhttp-{p['version']}/lib/"
        for f in FILES:
            m = t.getmember(top + f)
            data = t.extractfile(m)
            assert data is not None
            lib.mkdir(parents=True, exist_ok=True)
            (lib / f).write_bytes(data.read())
    return lib


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(lib_dir(Path(sys.argv[1])))
