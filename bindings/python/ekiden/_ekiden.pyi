# Type stub of the cffi extension module (cffi generates C, no annotations): the
# library namespace is dynamic; def_extern keeps the decorated function's type.
from typing import Any, Callable, Optional, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

class _FFI:
    NULL: Any
    def def_extern(self, name: Optional[str] = ..., error: Any = ...,
                   onerror: Optional[Callable[..., Any]] = ...) -> Callable[[_F], _F]: ...
    def __getattr__(self, name: str) -> Any: ...

ffi: _FFI
lib: Any
