"""The generated FFI declarations: cffi parses them, they match the library."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cffi  # type: ignore[import-untyped]

import ekiden
from ekiden._ekiden import lib

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "scripts" / "gen-cdef.py"


def generate(tmp_path: Path) -> Path:
    out = tmp_path / "ekiden.cdef"
    subprocess.run([sys.executable, str(GEN), "-o", str(out)], check=True)
    return out


def test_cffi_parses_the_generated_cdef(tmp_path: Path) -> None:
    text = generate(tmp_path).read_text()
    ffi = cffi.FFI()
    ffi.cdef(text)
    assert not [ln for ln in text.splitlines() if ln.lstrip().startswith("#")]
    assert "__attribute__" not in text and "EK_EXTERN" not in text
    # Constants and enums came through with the header's values.
    assert "EK_PENDING = 1," in text and "EK_ECLOSED = (-4001)" in text
    assert f"EK_VERSION_HEX = {lib.ek_version()}," in text
    # The extension was compiled from the same declarations, and cffi's API mode
    # checked every constant against the real header when it compiled.
    assert lib.EK_ECLOSED == -4001 and lib.EK_TCP_REUSEPORT == 1


def test_cdef_declares_exactly_the_exported_functions(tmp_path: Path) -> None:
    cdef = generate(tmp_path)
    lib = Path(ekiden.__file__).parent / "libekiden.so.0"
    res = subprocess.run([sys.executable, str(GEN), "--check-exports", str(lib), str(cdef)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert res.returncode == 0, res.stdout
    declared = int(res.stdout.split()[1])
    assert declared > 100


def test_check_exports_reports_a_difference(tmp_path: Path) -> None:
    cdef = generate(tmp_path)
    cdef.write_text(cdef.read_text() + "\nint ek_no_such_function(void);\n")
    lib = Path(ekiden.__file__).parent / "libekiden.so.0"
    res = subprocess.run([sys.executable, str(GEN), "--check-exports", str(lib), str(cdef)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert res.returncode == 1
    assert "ek_no_such_function" in res.stdout
