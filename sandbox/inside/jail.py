"""The OS jail under every restricted-backend call: Landlock, a seccomp
allowlist, and a network namespace for callers that are not root.

This is the boundary; the RestrictedPython policy above it is a courtesy.
A child that has entered the jail can run arbitrary Python (that is what the
`plain` policy does) and still reach nothing:

- **Landlock** handles every filesystem access right the kernel knows, with
  no rule: nothing can be opened, created, executed, renamed or truncated
  (``/proc`` included). Where the ABI has them, TCP bind/connect are handled
  too (no port allowed), and abstract UNIX sockets and signals are scoped to
  the child's own domain.
- **seccomp-BPF**: an allowlist of the system calls CPython needs on
  descriptors it already holds (read/write on its call socket, memory,
  private futexes, clocks, signal return, exit...). Everything else fails with
  EPERM: every ``open*``, every path-taking call Landlock does not cover
  (``stat``, ``access``, ``chmod``, ``chown``, ``readlink``, xattrs...),
  ``socket``, ``connect``, ``execve``, ``clone``/``fork`` and threads,
  ``kill`` of anyone, ``ptrace``, ``unshare``, ``mount``, ``bpf``,
  ``io_uring_*``, ``keyctl``, ``userfaultfd``, ``perf_event_open``, SysV IPC,
  ``memfd_create``, ``pipe``... A call whose number the filter does not know
  (another ABI, x32) kills the process.
- The **network namespace** (root: plain ``unshare``; other users: inside a
  fresh user namespace) leaves only a loopback interface that is down.
- The **zygote's own jail** (`ZygoteJail`), entered by the zygote before it
  imports anything a tool brings (a lock's packages): as root a user
  namespace mapped onto a machine-wide uid block (`namespaces_as_block`),
  Landlock that allows only reading the interpreter's files, the libraries
  and the lock's site (writing only /dev/null), and a default-allow filter
  that refuses sockets, exec, ptrace, namespaces, mounts, shared futexes and
  other kernel surface (`ZYGOTE_SECCOMP_DENIED`). Children inherit it under
  their own jail.
- Where Landlock is missing (kernel older than 5.13, or not in the LSM list),
  an **empty root** stands in for its filesystem part: the zygote moves into
  a mount namespace whose root is an empty, read-only tmpfs (`empty_root`).

Why not the Python bindings: the zygote must start in well under 100 ms and
loads only the standard library and RestrictedPython. ``landlockpy`` imports
``subprocess``, ``tempfile`` and its own test helpers, and ``pyseccomp`` runs
``ldconfig`` through ``ctypes.util.find_library`` at import: together about
20 ms. So the BPF program is still built by **libseccomp** (the maintained C
library: syscall tables, architecture checks, the BPF itself), loaded here
by its stable soname through a few ctypes declarations; Landlock is three
system calls with a versioned struct, declared below from
``linux/landlock.h``. ``tests/sandbox/test_jail.py`` checks both against the kernel.

Imports only the standard library.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

__all__ = [
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "LIBRARY_DIRS",
    "SECCOMP_ALLOWED",
    "ZYGOTE_SECCOMP_DENIED",
    "Jail",
    "JailError",
    "ZygoteJail",
    "drop_capabilities",
    "empty_root",
    "landlock_abi",
    "namespaces_as_block",
    "new_network_namespace",
    "SANDBOX_HOSTNAME",
]


class JailError(Exception):
    """A layer of the jail could not be put in force."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


# --------------------------------------------------------------------------- Landlock

# Same numbers on every architecture (they were added after the syscall
# tables were unified).
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1

# Filesystem rights by the ABI that introduced them (linux/landlock.h).
_FS_RIGHTS_BY_ABI = {
    1: (1 << 13) - 1,  # EXECUTE .. MAKE_SYM
    2: 1 << 13,  # REFER
    3: 1 << 14,  # TRUNCATE
    5: 1 << 15,  # IOCTL_DEV
    9: 1 << 16,  # RESOLVE_UNIX
}
_NET_RIGHTS_BY_ABI = {4: (1 << 0) | (1 << 1), 10: (1 << 2) | (1 << 3)}  # TCP bind/connect; UDP
_SCOPES_BY_ABI = {6: (1 << 0) | (1 << 1)}  # abstract UNIX sockets, signals


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 if Landlock is missing or off."""
    abi = _libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION)
    )
    return int(abi) if abi > 0 else 0


def _rights(table: dict[int, int], abi: int) -> int:
    mask = 0
    for since, bits in table.items():
        if abi >= since:
            mask |= bits
    return mask


def _landlock_attr(abi: int) -> tuple[_RulesetAttr, int, dict[str, Any]]:
    attr = _RulesetAttr(_rights(_FS_RIGHTS_BY_ABI, abi), _rights(_NET_RIGHTS_BY_ABI, abi), _rights(_SCOPES_BY_ABI, abi))
    # The struct grew with the ABI; the kernel wants the size it knows.
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    facts = {
        "abi": abi,
        "fs_rights": attr.handled_access_fs,
        "net_rights": attr.handled_access_net,
        "scopes": attr.scoped,
    }
    return attr, size, facts


_SYS_LANDLOCK_ADD_RULE = 445
_LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # struct landlock_path_beneath_attr is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _enter_landlock(abi: int, rules: tuple[tuple[int, int], ...] = ()) -> None:
    """Restrict this process: every right the ABI knows is handled, and
    only ``rules`` ((descriptor, rights) pairs: those rights beneath that
    file or directory) allow anything; the children's jail has none."""
    attr, size, _facts = _landlock_attr(abi)
    fd = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise JailError(f"landlock_create_ruleset: {_errno_text()}")
    try:
        for parent_fd, rights in rules:
            rule = _PathBeneath(rights, parent_fd)
            if (
                _libc.syscall(
                    _SYS_LANDLOCK_ADD_RULE,
                    ctypes.c_int(fd),
                    ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
                != 0
            ):
                raise JailError(f"landlock_add_rule: {_errno_text()}")
        # Without a rule every handled right is denied everywhere.
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise JailError(f"landlock_restrict_self: {_errno_text()}")
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- seccomp

# What a running CPython needs on descriptors it already holds. Names, not
# numbers: libseccomp resolves them for the running architecture, and a name
# an architecture lacks (aarch64 has no `open` or `poll`) is skipped.
SECCOMP_ALLOWED: tuple[str, ...] = (
    # I/O on descriptors already open: the call socket, /dev/null.
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "lseek",
    "close",
    "fstat",
    "dup",
    "dup2",
    "dup3",
    "recvfrom",
    "recvmsg",
    "sendto",
    "sendmsg",
    "shutdown",
    "getsockname",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    # Memory.
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    # Scheduling, time. (futex: private operations only, below; not
    # set_robust_list, futex_waitv or the futex2 calls.)
    "rseq",
    "sched_yield",
    "nanosleep",
    "gettimeofday",
    "time",
    # Who am I (read only).
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "getpgrp",
    "uname",
    "getcwd",
    # Resources of this process (prlimit64 only on itself, below).
    "getrlimit",
    "getrusage",
    "times",
    # Signals of this process: handlers, masks, return from a handler.
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "rt_sigpending",
    "getrandom",
    "restart_syscall",
    "exit",
    "exit_group",
)

# ioctl only to switch a socket's blocking mode (socket.settimeout) or its
# close-on-exec flag.
_FIONBIO = 0x5421
_FIONCLEX = 0x5450
_FIOCLEX = 0x5451

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_KILL_PROCESS = 0x80000000
_SCMP_CMP_EQ = 4
_SCMP_CMP_MASKED_EQ = 7

_SOL_SOCKET = 1
# getsockopt: what socket(fileno=...) asks of a descriptor it is handed.
# Not SO_PEERCRED, which would tell the host's pid and uid.
_SOCKET_FACTS = (3, 4, 38, 39)  # SO_TYPE, SO_ERROR, SO_PROTOCOL, SO_DOMAIN
_FCNTL_COMMANDS = (0, 1, 2, 3, 4, 1030)  # F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC
_SCMP_FLTATR_ACT_BADARCH = 2
# libseccomp >= 2.5: how the program is laid out; 2 is a binary tree sorted by
# system call number (`_Filter`).
_SCMP_FLTATR_CTL_OPTIMIZE = 8
_SCMP_OPTIMIZE_BINARY_TREE = 2
# A futex operation with this bit is keyed by (address space, address): only
# this process can meet it. Without it, a futex on a file-backed mapping is
# keyed by (inode, offset), so every process mapping the same file meets
# there: a call and any process outside (or another call) rendezvous on a
# word of libc's read-only text and send bits by wait and wake.
_FUTEX_PRIVATE_FLAG = 128
_SYS_SET_ROBUST_LIST = {"x86_64": 273, "aarch64": 99}


def _scmp_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


# An argument condition: (argument index, datum) for equality, or (argument
# index, datum, mask) for (arg & mask) == datum.
_Cond = tuple[int, int] | tuple[int, int, int]


_LIBSECCOMP = "libseccomp.so.2"


class _Filter:
    """A libseccomp filter context with a default action: built once in the
    zygote, loaded by whoever enters it (fork copies the context)."""

    def __init__(self, default_action: int) -> None:
        try:
            lib = ctypes.CDLL(_LIBSECCOMP, use_errno=True)
        except OSError as exc:
            raise JailError(f"{_LIBSECCOMP} not found ({exc}); install libseccomp2") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        self._lib = lib
        ctx = lib.seccomp_init(default_action)
        if not ctx:
            raise JailError("seccomp_init failed")
        self._ctx = ctx
        self._check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_ACT_BADARCH, _SCMP_ACT_KILL_PROCESS), "attr")
        # The same rules laid out as a binary tree of system call numbers
        # instead of one long chain: the same decision for every call, in
        # fewer instructions run. It is what makes loading it cheaper: the
        # kernel runs the program once for every system call number when a
        # filter is attached (its action cache), and a child attaches one
        # per call: 170 µs with the chain, 80-100 µs with the tree
        # (bench/profile_call.py, "seccomp"). Where libseccomp is older
        # than 2.5 the attribute is unknown and the chain stays.
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, _SCMP_OPTIMIZE_BINARY_TREE)
        self.allowed: list[str] = []
        self.conditional: set[str] = set()  # allowed only with given arguments

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise JailError(f"seccomp {what}: {os.strerror(-rc)}")

    def _rule(self, action: int, name: str, *conds: _Cond) -> bool:
        """One rule: the call is matched when every condition holds."""
        number = self._lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return False  # not a system call on this architecture (or this libseccomp)
        cmps = (_ArgCmp * max(1, len(conds)))()
        for i, cond in enumerate(conds):
            if len(cond) == 3:
                cmps[i] = _ArgCmp(cond[0], _SCMP_CMP_MASKED_EQ, cond[2], cond[1])
            else:
                cmps[i] = _ArgCmp(cond[0], _SCMP_CMP_EQ, cond[1], 0)
        rc = self._lib.seccomp_rule_add_array(self._ctx, action, number, len(conds), cmps if conds else None)
        self._check(rc, f"rule for {name}")
        if conds and action == _SCMP_ACT_ALLOW:
            self.conditional.add(name)
        return True

    def load(self) -> None:
        self._check(self._lib.seccomp_load(self._ctx), "load")


def _forget_robust_list() -> None:
    """Unregister this thread's robust futex list (glibc registered one in
    the child at fork); the filter then refuses ``set_robust_list``.

    At exit the kernel walks the list and, for its ``list_op_pending``
    entry, wakes the futex word it names *shared* when that word is 0. The
    word needs no write access: a zero word of libc's read-only text will do,
    and the head lives in the process's own writable memory, so a tool could
    rewrite it with ctypes and wake a process outside when it exits (tested:
    tests/attacks/test_channels.py). With no list registered the kernel
    walks nothing. The other exit-time wake, ``clear_child_tid``, points at
    this thread's own tid word (anonymous memory, keyed to this process) and
    fires only with other threads sharing the memory; changing it needs
    ``set_tid_address`` or ``clone``, both refused. Single-threaded, the
    child has no robust mutex to lose."""
    number = _SYS_SET_ROBUST_LIST.get(os.uname().machine)
    if number is None:
        raise JailError(f"set_robust_list number unknown on {os.uname().machine}")
    # Size of struct robust_list_head: three pointer-sized fields.
    if _libc.syscall(ctypes.c_long(number), None, ctypes.c_size_t(3 * ctypes.sizeof(ctypes.c_void_p))) != 0:
        raise JailError(f"set_robust_list(NULL): {_errno_text()}")


class _SockFprog(ctypes.Structure):
    # struct sock_fprog (linux/filter.h): the length in instructions, then
    # a pointer to them.
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
_SECCOMP_SET_MODE_FILTER = 1
_BPF_INSTRUCTION = 8  # bytes of one struct sock_filter


class _Program:
    """A filter's BPF, generated by libseccomp once (in the zygote) and
    loaded as is by each child with the one system call `seccomp_load`
    itself ends in: ``seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog)``. The
    same instructions, the same flags (libseccomp's defaults: no TSYNC, no
    LOG, no SPEC_ALLOW; no_new_privs is already set), without regenerating
    the program from the rules in every child (0.6 ms of a call's CPU)."""

    def __init__(self, lib: Any, ctx: Any) -> None:
        number = _SYS_SECCOMP.get(os.uname().machine)
        if number is None:
            raise JailError(f"seccomp's number unknown on {os.uname().machine}")
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        fd = os.memfd_create("toolcrib-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc != 0:
                raise JailError(f"seccomp export: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            code = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        if not code or len(code) != size or size % _BPF_INSTRUCTION or size // _BPF_INSTRUCTION > 0xFFFF:
            raise JailError(f"seccomp export: a program of {size} bytes")
        self.code = code
        # Built here, so the child only makes the call (and touches no new memory).
        self._buffer = ctypes.create_string_buffer(code, size)
        self._prog = _SockFprog(size // _BPF_INSTRUCTION, ctypes.addressof(self._buffer))
        self._number = ctypes.c_long(number)

    def load(self) -> None:
        if (
            _libc.syscall(
                self._number, ctypes.c_long(_SECCOMP_SET_MODE_FILTER), ctypes.c_long(0), ctypes.byref(self._prog)
            )
            != 0
        ):
            raise JailError(f"seccomp load: {_errno_text()}")


class _Seccomp(_Filter):
    """The children's allowlist: EPERM for every call not named here."""

    def __init__(self) -> None:
        super().__init__(_scmp_errno(errno.EPERM))
        for name in SECCOMP_ALLOWED:
            if self._rule(_SCMP_ACT_ALLOW, name):
                self.allowed.append(name)
        # glibc's own locks, condition variables and semaphores in one
        # process all pass the private flag; shared ones are refused.
        # futex_waitv and futex_wait/wake/requeue (futex2) stay off the list.
        self._rule(_SCMP_ACT_ALLOW, "futex", (1, _FUTEX_PRIVATE_FLAG, _FUTEX_PRIVATE_FLAG))
        for request in (_FIONBIO, _FIONCLEX, _FIOCLEX):
            self._rule(_SCMP_ACT_ALLOW, "ioctl", (1, request))
        # Limits may be read and lowered for this process only, never for
        # another process of the same user.
        self._rule(_SCMP_ACT_ALLOW, "prlimit64", (0, 0))
        # The clocks of this process and thread and the system's (ids 0-15),
        # not the CPU clocks of other processes (negative ids): a side
        # channel on the host and a covert one between calls.
        for name in ("clock_gettime", "clock_getres", "clock_nanosleep"):
            self._rule(_SCMP_ACT_ALLOW, name, (0, 0, 0xFFFFFFF0))
        # Questions about a process: only about this one (pid 0), so a tool
        # cannot learn which other pids exist.
        for name in ("getpgid", "getsid", "sched_getaffinity"):
            self._rule(_SCMP_ACT_ALLOW, name, (0, 0))
        # fcntl: descriptor flags and duplicates only; not F_SETOWN/F_SETSIG
        # (I/O signals aimed at another process), leases, notifications, locks.
        for command in _FCNTL_COMMANDS:
            self._rule(_SCMP_ACT_ALLOW, "fcntl", (1, command))
        for option in _SOCKET_FACTS:
            self._rule(_SCMP_ACT_ALLOW, "getsockopt", (1, _SOL_SOCKET), (2, option))
        self._rule(_SCMP_ACT_ALLOW, "setrlimit")
        # glibc tries clone3 for threads and falls back to clone on ENOSYS;
        # both end in a refusal, this one says "not here" quickly.
        self._rule(_scmp_errno(errno.ENOSYS), "clone3")
        self.program = _Program(self._lib, self._ctx)

    def load(self) -> None:
        # Before the filter: from then on set_robust_list is refused.
        _forget_robust_list()
        self.program.load()


# What the zygote itself may not do once it imports code it did not write (a
# lock's packages): default allow, these refused with EPERM. The zygote needs
# fork, socketpair, epoll, pidfds, wait, kill of its children, setresuid in a
# child, and the Landlock and seccomp calls its children make; nothing here.
ZYGOTE_SECCOMP_DENIED: tuple[str, ...] = (
    # No network: the zygote only ever needs socketpair.
    "socket",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    # No other program, no other process's memory or descriptors.
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "process_madvise",
    # No mounts or namespaces (the zygote's own were made before).
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "sethostname",
    "setdomainname",
    # Channels to other processes that no path names, so Landlock does not
    # see them: SysV IPC and POSIX message queues (their namespace is the
    # host's), watches on files others use, the kernel log.
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "syslog",
    "migrate_pages",
    "move_pages",
    # Kernel attack surface a Python process never needs.
    "uselib",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "vhangup",
    # Shared futexes are keyed by file and offset: two processes that map
    # the same file (libc's text) could rendezvous on it. Only private
    # futexes (below), none of the newer futex calls.
    "futex_waitv",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
)
# A shared futex operation's answer in the zygote (the private flag clear,
# the command in the low 7 bits): a wait gets EAGAIN and a wake EINVAL, which
# glibc retries or ignores (pthread_join waits on a thread's tid without the
# private flag and aborts on EPERM), as the Docker profile answers; nothing is
# woken either way. Any other shared command: EPERM.
_SHARED_FUTEX_ERRNO = {0: errno.EAGAIN, 9: errno.EAGAIN, 1: errno.EINVAL, 10: errno.EINVAL}
_FUTEX_COMMANDS = 14  # FUTEX_WAIT (0) .. FUTEX_LOCK_PI2 (13)
# clone flags that make namespaces (unshare is refused outright; clone3's
# flags are in memory, where seccomp cannot look: it is ENOSYS, and glibc
# falls back to clone).
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x00000080,
)


class _ZygoteSeccomp(_Filter):
    """The zygote stage's filter: allow by default, refuse
    `ZYGOTE_SECCOMP_DENIED`, futexes without the private flag and clones
    into new namespaces.

    Not filtered by argument, because the kernel already confines them:
    setresuid/setresgid and friends (as root the zygote lives in a user
    namespace that maps only its own block: any other id is EINVAL; an
    ordinary user's namespace maps only that user), and kill/tgkill (no
    capability outside that namespace, no shared uid with anything outside
    it, and Landlock scopes signals to the zygote's own domain)."""

    def __init__(self) -> None:
        super().__init__(_SCMP_ACT_ALLOW)
        refuse = _scmp_errno(errno.EPERM)
        self.denied = [name for name in ZYGOTE_SECCOMP_DENIED if self._rule(refuse, name)]
        for command in range(_FUTEX_COMMANDS):
            answer = _scmp_errno(_SHARED_FUTEX_ERRNO.get(command, errno.EPERM))
            self._rule(answer, "futex", (1, command, _FUTEX_PRIVATE_FLAG | 0x7F))
        for flag in _CLONE_NAMESPACE_FLAGS:
            self._rule(refuse, "clone", (0, flag, flag))
        self._rule(_scmp_errno(errno.ENOSYS), "clone3")


# --------------------------------------------------------------------------- namespaces, capabilities

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWUTS = 0x04000000
SANDBOX_HOSTNAME = "toolcrib-sandbox"


def _own_hostname() -> None:
    # A UTS namespace of its own, so os.uname() does not tell the host's name.
    name = SANDBOX_HOSTNAME.encode()
    if _libc.sethostname(name, ctypes.c_size_t(len(name))) != 0:
        raise OSError(ctypes.get_errno(), f"sethostname: {_errno_text()}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def new_network_namespace() -> dict[str, Any]:
    """Move this process (and every child it forks later) into a fresh
    network namespace: only a loopback interface, and that one down.

    Root unshares it directly. Another user first enters a new user
    namespace that maps only its own uid and gid (so nothing changes for
    file ownership), then the network namespace inside it; the caller must
    drop the capabilities that come with a new user namespace
    (`drop_capabilities`) once it has used them (`empty_root`). Returns
    facts; never raises."""
    if os.geteuid() == 0:
        if _libc.unshare(_CLONE_NEWNET | _CLONE_NEWUTS) != 0:
            return {"netns": False, "netns_error": f"unshare(CLONE_NEWNET|CLONE_NEWUTS): {_errno_text()}"}
        try:
            _own_hostname()
        except OSError as exc:
            return {"netns": True, "netns_via": "root", "hostname_error": str(exc)}
        return {"netns": True, "netns_via": "root"}
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWUTS) != 0:
        return {"netns": False, "netns_error": f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {_errno_text()}"}
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        _own_hostname()
    except OSError as exc:
        return {"netns": False, "netns_error": f"user namespace set-up: {exc}"}
    return {"netns": True, "netns_via": "user namespace"}


_PR_SET_DUMPABLE = 4


def namespaces_as_block(base: int, size: int) -> dict[str, Any]:
    """Root's way in (user_namespaces(7)): move this process into a fresh
    user, network and UTS namespace whose ids 0..size-1 are the host's
    ``base .. base+size-1`` (a block claimed machine-wide, `uids.py`), and
    become in-namespace 0: from then on its kernel uid is the unprivileged
    ``base``, and its capabilities hold only inside that namespace, which
    owns nothing on the host (no signal or ptrace to host processes, no
    override of file permissions).

    A process cannot write a map of more than its own id for itself once it
    is inside (that needs CAP_SETUID in the parent namespace), so a helper
    forked first, still root outside, writes both maps and exits. Returns
    facts; never raises."""
    go_r, go_w = os.pipe()
    helper = os.fork()
    if helper == 0:  # the helper: wait for the unshare, write the maps, go
        code = 1
        try:
            os.close(go_w)
            if os.read(go_r, 1) == b"1":
                parent = os.getppid()
                _write(f"/proc/{parent}/uid_map", f"0 {base} {size}")
                _write(f"/proc/{parent}/gid_map", f"0 {base} {size}")
                code = 0
        finally:
            os._exit(code)
    os.close(go_r)
    unshared = _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWUTS) == 0
    why = _errno_text()
    os.write(go_w, b"1" if unshared else b"0")
    os.close(go_w)
    _pid, status = os.waitpid(helper, 0)
    if not unshared:
        return {"netns": False, "netns_error": f"unshare(CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWUTS): {why}"}
    if status != 0:
        return {"netns": False, "netns_error": "the helper could not write the user namespace's id maps"}
    try:
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        # The change of uid made the process non-dumpable, which hands its
        # /proc entries to the host's root; the zygote reads its import
        # paths through /proc/self/fd (`ZygoteJail.reachable`).
        if _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_SET_DUMPABLE): {_errno_text()}")
        _own_hostname()
    except OSError as exc:
        return {"netns": False, "netns_error": f"user namespace set-up: {exc}"}
    return {"netns": True, "netns_via": "user namespace (uid block)", "uid_block": base}


_CLONE_NEWNS = 0x00020000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        raise JailError(f"mount {target}: {_errno_text()}")


def empty_root() -> dict[str, Any]:
    """Make this process's root an empty, read-only tmpfs in a private mount
    namespace (the stand-in for Landlock's filesystem rights on kernels
    without it). Needs CAP_SYS_ADMIN in the current user namespace: root, or
    an ordinary user before `new_network_namespace` drops its capabilities
    (the zygote calls this first). Everything the children need must be
    imported already. Returns facts; never raises."""
    machine = os.uname().machine
    if machine not in _SYS_PIVOT_ROOT:
        return {"empty_root": False, "empty_root_error": f"pivot_root number unknown on {machine}"}
    try:
        if _libc.unshare(_CLONE_NEWNS) != 0:
            raise JailError(f"unshare(CLONE_NEWNS): {_errno_text()}")
        # Nothing done here may propagate back to the host's mounts.
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        base = next(d for d in ("/tmp", "/mnt", "/var/tmp") if os.path.isdir(d))
        _mount("tmpfs", base, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=4k,nr_inodes=4,mode=0555")
        os.mkdir(os.path.join(base, "old"), 0o000)
        if _libc.syscall(_SYS_PIVOT_ROOT[machine], base.encode(), os.path.join(base, "old").encode()) != 0:
            raise JailError(f"pivot_root: {_errno_text()}")
        os.chdir("/")
        if _libc.umount2(b"/old", _MNT_DETACH) != 0:
            raise JailError(f"umount /old: {_errno_text()}")
        os.rmdir("/old")
        _mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    except (JailError, OSError) as exc:
        return {"empty_root": False, "empty_root_error": str(exc)}
    return {"empty_root": True}


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7


def drop_capabilities(keep: tuple[int, ...] = ()) -> None:
    """Empty this process's effective, permitted and inheritable sets, but
    for the capabilities in ``keep`` (effective and permitted)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for cap in keep:
        data[cap // 32].effective |= 1 << (cap % 32)
        data[cap // 32].permitted |= 1 << (cap % 32)
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise JailError(f"capset: {_errno_text()}")


# --------------------------------------------------------------------------- the jail


class Jail:
    """Built once in the zygote (`prepare`), entered by each child.

    ``require``: layers whose absence is an error for the child (the zygote
    passes what its start-up probe achieved, so a child never runs with less
    than the host was told)."""

    LAYERS = ("landlock", "seccomp")

    def __init__(self) -> None:
        self.abi = landlock_abi()
        self.errors: dict[str, str] = {}
        if self.abi <= 0:
            self.errors["landlock"] = "Landlock is not available (kernel older than 5.13, or not in the LSM list)"
        self._seccomp: _Seccomp | None = None
        try:
            self._seccomp = _Seccomp()
        except JailError as exc:
            self.errors["seccomp"] = str(exc)
        self.require: frozenset[str] = frozenset()

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"landlock_abi": self.abi}
        if self.abi > 0:
            facts["landlock"] = _landlock_attr(self.abi)[2]
        if self._seccomp is not None:
            facts["seccomp_allowed"] = len(self._seccomp.allowed)
            facts["seccomp_conditional"] = len(self._seccomp.conditional - set(self._seccomp.allowed))
        return facts

    def enter(self) -> list[str]:
        """Put every available layer in force on this process, Landlock
        first (its system calls are not on the allowlist). Returns the
        layers in force. Raises JailError if a required one fails."""
        entered: list[str] = []
        if self.abi > 0:
            try:
                _enter_landlock(self.abi)
                entered.append("landlock")
            except JailError as exc:
                if "landlock" in self.require:
                    raise
                self.errors["landlock"] = str(exc)
        if self._seccomp is not None:
            try:
                self._seccomp.load()
                entered.append("seccomp")
            except JailError as exc:
                if "seccomp" in self.require:
                    raise
                self.errors["seccomp"] = str(exc)
        missing = self.require - set(entered)
        if missing:
            raise JailError(f"required layer(s) not available: {', '.join(sorted(missing))}")
        return entered


# --------------------------------------------------------------------------- the zygote's own jail

_O_PATH = getattr(os, "O_PATH", 0o10000000)
# Where the dynamic loader finds the system's shared libraries (manylinux
# wheels load libc, libm, libgcc_s and libstdc++ from here).
LIBRARY_DIRS: tuple[str, ...] = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache")


class ZygoteJail:
    """The jail the zygote itself enters before it imports anything it did
    not bring (a lock's packages): Landlock that allows only reading (and
    executing) ``readable`` (the interpreter's own files, RestrictedPython,
    the sandbox, the lock's site directory) and reading and writing
    ``writable`` files (/dev/null), TCP bind/connect handled with no rule,
    signals and abstract sockets scoped; then `_ZygoteSeccomp`. Its
    children enter the stricter `Jail` on top.

    Every path is opened (O_PATH) when this is built, before the zygote
    changes uid: `reachable` names each directory through
    ``/proc/self/fd/<n>``, which the zygote can still walk where a parent
    directory (``/root``) is closed to its new uid."""

    LAYERS = ("landlock", "seccomp")

    def __init__(self, readable: tuple[str, ...], writable: tuple[str, ...] = ("/dev/null",)) -> None:
        self.abi = landlock_abi()
        self.errors: dict[str, str] = {}
        self.reachable: dict[str, str] = {}  # directory -> /proc/self/fd/<n>
        self._rules: list[tuple[int, int]] = []
        self._files: list[int] = []  # descriptors only the rules need
        for path, rights in [(p, FS_EXECUTE | FS_READ_FILE) for p in readable] + [
            (p, FS_READ_FILE | FS_WRITE_FILE) for p in writable
        ]:
            self._add(path, rights)
        self._seccomp: _ZygoteSeccomp | None = None
        try:
            self._seccomp = _ZygoteSeccomp()
        except JailError as exc:
            self.errors["seccomp"] = str(exc)

    def _add(self, path: str, rights: int) -> None:
        real = os.path.realpath(path)
        if real in self.reachable:
            return
        try:
            fd = os.open(real, _O_PATH | os.O_CLOEXEC)
        except OSError:
            return  # absent here (/lib64, /usr/lib64 ...)
        if os.path.isdir(real):
            rights |= FS_READ_DIR
            self.reachable[real] = f"/proc/self/fd/{fd}"
        else:
            self._files.append(fd)
        self._rules.append((fd, rights))

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"readable": sorted(self.reachable), "rules": len(self._rules)}
        if self._seccomp is not None:
            facts["seccomp_denied"] = len(self._seccomp.denied)
        return facts

    def enter(self) -> list[str]:
        """Put Landlock (with the rules) and the filter in force on this
        process (which must have no_new_privs). Returns the layers in force;
        never raises (what failed is in ``errors``)."""
        entered: list[str] = []
        if self.abi > 0:
            try:
                _enter_landlock(self.abi, tuple(self._rules))
                entered.append("landlock")
            except JailError as exc:
                self.errors["landlock"] = str(exc)
        else:
            self.errors["landlock"] = "Landlock is not available"
        for fd in self._files:
            os.close(fd)
        self._files.clear()
        if self._seccomp is not None:
            try:
                self._seccomp.load()
                entered.append("seccomp")
            except JailError as exc:
                self.errors["seccomp"] = str(exc)
        return entered
