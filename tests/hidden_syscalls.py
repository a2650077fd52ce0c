"""Python source that puts an outer seccomp filter on the process that runs
it: the named system calls answer ENOSYS, as on an older kernel or in a
container without Landlock or seccomp. The jail tests run a backend under it
to see that the jail fails closed (tests/sandbox/test_jail.py,
tests/attacks/test_lock_jail.py) and the Ray tests start a node under it
(tests/raycluster.py). The filter stays on across exec and on every child.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["hiding"]

_SETUP = """
import ctypes
_lib = ctypes.CDLL("libseccomp.so.2")
_lib.seccomp_init.restype = ctypes.c_void_p
_lib.seccomp_init.argtypes = [ctypes.c_uint32]
_lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
_lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
_lib.seccomp_load.argtypes = [ctypes.c_void_p]
_ctx = _lib.seccomp_init(0x7FFF0000)  # allow everything else
class _Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
def _enosys(name, *cmps):
    array = (_Cmp * len(cmps))(*cmps) if cmps else None
    number = _lib.seccomp_syscall_resolve_name(name.encode())
    assert _lib.seccomp_rule_add_array(_ctx, 0x50000 | 38, number, len(cmps), array) == 0
"""


def hiding(names: Iterable[str], *, prctl_set_seccomp: bool = False) -> str:
    """The source that hides `names` (and, with `prctl_set_seccomp`, the old
    way into seccomp: prctl(PR_SET_SECCOMP)) before the code after it runs."""
    lines = [_SETUP]
    lines += [f"_enosys({name!r})" for name in names]
    if prctl_set_seccomp:
        lines.append('_enosys("prctl", _Cmp(0, 4, 22, 0))  # arg 0 == PR_SET_SECCOMP')
    lines.append("assert _lib.seccomp_load(_ctx) == 0\n")
    return "\n".join(lines)
