"""setup.py - only what pyproject.toml cannot say: the cffi extension and the C core.

cffi_modules must be given to setup() (cffi's setuptools hook reads it there).
build_ext first compiles the C core (core/, capi/) into libekiden.so.0 with its
linker version script, puts it beside the extension, and links the extension to
it with an $ORIGIN run path, so a wheel carries both and needs no source tree.
Environment: EKIDEN_SANITIZE=address builds both with ASan+UBSan (for the test
suite's sanitizer run); EKIDEN_BUILD_JOBS caps parallel compiles (default: CPUs).
"""
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "bindings" / "python"))
import ekiden_build  # noqa: E402  (the cffi build script, for its flag lists)

SONAME = "libekiden.so.0"


class BuildExtWithCore(build_ext):
    def finalize_options(self) -> None:
        build_ext.finalize_options(self)
        # Objects of a sanitizer build must not be reused by a plain one (and the
        # other way round): setuptools only compares timestamps, not flags.
        # (The build tree itself is per flavour too: see build_base below.)
        if os.environ.get("EKIDEN_SANITIZE"):
            self.force = True

    def _build_core(self) -> Path:
        out_dir = Path(self.build_temp) / "ekiden-core"
        out_dir.mkdir(parents=True, exist_ok=True)
        sources = ekiden_build.core_sources()
        cc = self.compiler
        args = ekiden_build.core_cflags()
        jobs = int(os.environ.get("EKIDEN_BUILD_JOBS", os.cpu_count() or 1))

        def one(src: str) -> list:
            return cc.compile([src], output_dir=str(out_dir), include_dirs=ekiden_build.core_includes(),
                              macros=[("_GNU_SOURCE", None)], extra_postargs=args)

        with ThreadPoolExecutor(max(1, jobs)) as pool:
            objects = [o for objs in pool.map(one, sources) for o in objs]
        lib = out_dir / SONAME
        cc.link_shared_object(objects, str(lib), extra_postargs=ekiden_build.core_ldflags(SONAME))
        return lib

    def build_extensions(self) -> None:
        lib = self._build_core()
        self._core_lib = lib
        for ext in self.extensions:
            ext.library_dirs = list(ext.library_dirs or []) + [str(lib.parent)]
        build_ext.build_extensions(self)
        for ext in self.extensions:
            dest = Path(self.get_ext_fullpath(ext.name)).parent
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib, dest / SONAME)

    def copy_extensions_to_source(self) -> None:
        # In-place and editable builds: the library goes beside the extension in
        # the source tree too.
        build_ext.copy_extensions_to_source(self)
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            package = ".".join(self.get_ext_fullname(ext.name).split(".")[:-1])
            shutil.copy2(self._core_lib, Path(build_py.get_package_dir(package)) / SONAME)


setup(
    # setuptools' own build tree, kept apart from CMake's files in build/.
    # One per sanitizer flavour, so a sanitized build never leaks into a plain one.
    options={"build": {"build_base": "build/setuptools" + (
        "-" + os.environ["EKIDEN_SANITIZE"] if os.environ.get("EKIDEN_SANITIZE") else "")}},
    cffi_modules=["bindings/python/ekiden_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithCore},
)
