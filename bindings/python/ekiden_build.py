"""ekiden_build.py - the cffi build script of the `ekiden` package (API mode, out-of-line).

The declarations are the public header turned into plain C by scripts/gen-cdef.py
(the same file CMake writes to build/ekiden.cdef), plus the glue's own: the
callbacks the runtime calls into Python are `extern "Python"` (static C functions
that cffi generates; no libffi closures) and ekiden_glue.c, compiled into the same
translation unit, adapts them to the runtime's function-pointer types.

The extension links libekiden.so.0, which setup.py builds from core/ and capi/
first and places beside it.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
INCLUDE = ROOT / "capi" / "include"


def _sanitize_flags() -> list[str]:
    if os.environ.get("EKIDEN_SANITIZE") == "address":
        return ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    return []


def _llhttp_dir() -> Path:
    """llhttp's C sources (the HTTP codec's parser), fetched once by
    scripts/llhttp.py (pinned, hash-checked) into build/llhttp."""
    spec = importlib.util.spec_from_file_location("ek_llhttp", ROOT / "scripts" / "llhttp.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return Path(mod.lib_dir(ROOT / "build" / "llhttp"))


def core_sources() -> list[str]:
    files = sorted((ROOT / "core").rglob("*.c")) + sorted((ROOT / "capi").glob("*.c"))
    llhttp = _llhttp_dir()
    files += [llhttp / f for f in ("llhttp.c", "api.c", "http.c")]
    return [str(f) for f in files]


def core_includes() -> list[str]:
    return [str(INCLUDE), str(ROOT / "core"), str(_llhttp_dir())]


def core_cflags() -> list[str]:
    return ["-std=c11", "-O2", "-fPIC", "-fvisibility=hidden", "-pthread"] + _sanitize_flags()


def core_ldflags(soname: str) -> list[str]:
    return [f"-Wl,-soname,{soname}", f"-Wl,--version-script={ROOT / 'capi' / 'ekiden.map'}",
            "-pthread"] + _sanitize_flags()


def _gen_cdef() -> str:
    spec = importlib.util.spec_from_file_location("ek_gen_cdef", ROOT / "scripts" / "gen-cdef.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cc = os.environ.get("CC", "cc")
    return str(mod.generate(INCLUDE, cc))


GLUE_CDEF = """
/* A batch of a Python service's requests (ekiden_glue.c, _service.py). */
typedef struct ekpy_batch {
    size_t n;
    ek_msg **reqs;
    long *counts;
    ...;
} ekpy_batch;

/* Called by the runtime (ekiden_glue.c), implemented in Python (_runtime.py). */
extern "Python" void ekpy_handle_drop(void *handle);
extern "Python" int ekpy_handle_clone(void *handle, void **out);
extern "Python" int ekpy_svc_batch(void *self, ekpy_batch *batch);
extern "Python" void ekpy_svc_drop(void *self);
extern "Python" int ekpy_resp_poll(void *handle, void **out);
extern "Python" void ekpy_resp_drop(void *handle);
extern "Python" int ekpy_retry_policy(void *ud, const ek_msg *req, unsigned attempt, int rc,
                                      const ek_msg *resp);
extern "Python" void ekpy_retry_drop(void *ud);

/* ekiden_glue.c */
#define EKPY_PENDING ...
#define EKPY_NO_TASK ...
typedef struct ekpy_stream {
    void *sock;
    int unix_;
    char *buf;
    size_t len;
    int busy;
    int closing;
} ekpy_stream;
ek_cx *ekpy_cx(void);
void *ekpy_current_task(void);
long ekpy_io_read(ekpy_stream *s);
long ekpy_io_read_into(ekpy_stream *s, char *buf, size_t len);
long ekpy_io_write(ekpy_stream *s, const char *data, size_t len);
long ekpy_io_yield(void);
long ekpy_io_future_poll(ek_future *f, void **out);
long ekpy_future_poll(ek_future *f, void **out);
ek_waker *ekpy_io_waker(void);
#define EKPY_FLAT_MAX ...
typedef struct ekpy_flat {
    char *buf;
    size_t cap;
    size_t lens[...];
} ekpy_flat;
long ekpy_io_resp_bulks(const ek_msg *msg, ekpy_flat *flat);
ek_msg *ekpy_io_resp_string(int type, const char *data, size_t len);
ek_msg *ekpy_io_resp_null(void);
extern ek_drop_fn ekpy_handle_drop_fn;
extern ek_clone_fn ekpy_handle_clone_fn;
int ekpy_service_new(void *handle, ek_service **out, void **svc);
void ekpy_service_release(void *svc);
int ekpy_service_direct(void *svc, ek_service **out);
#define EKPY_R_SKIP ...
#define EKPY_R_MSG ...
#define EKPY_R_FAIL ...
#define EKPY_R_TASK ...
#define EKPY_REQ_BYTES ...
#define EKPY_REQ_OTHER ...
#define EKPY_REQ_GONE ...
#define EKPY_INSTALL_RUNTIME ...
#define EKPY_INSTALL_SERVICE ...
#define EKPY_INSTALL_NET ...
int ekpy_io_install(const char *module, int which);
int ekpy_builder_lease(ek_builder *b);
int ekpy_join_wait(ek_join *j, void **out, int lease);
int ekpy_server_shutdown_thread(ek_server *server, uint64_t grace_ms, ek_oneshot_sender *tx);
"""

ffibuilder = FFI()
ffibuilder.cdef(_gen_cdef() + GLUE_CDEF)
ffibuilder.set_source(
    "ekiden._ekiden",
    '#include "ekiden.h"\n' + (HERE / "ekiden_glue.c").read_text(),
    include_dirs=[str(INCLUDE)],
    define_macros=[("_GNU_SOURCE", None)],
    libraries=[":libekiden.so.0", "pthread"],
    extra_compile_args=["-std=c11", "-O2"] + _sanitize_flags(),
    extra_link_args=["-Wl,-rpath,$ORIGIN"] + _sanitize_flags(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
