"""Direct probes of the jail: plain Python tools that each try one thing the
jail must refuse, catch the refusal *inside* the child and return the errno
they got (``{"denied": "EPERM"}``). A probe that gets through returns
``{"done": ...}`` instead, so a pass can only come from a refusal inside the
jailed process, never from a host-side refusal or a policy block (the policy
is off: ``policy="plain"``).

Standard library only: `test_jail.py` imports it, and `jail_driver.py`
loads it by path under another user.

Placeholders are those of `jailkit.JailCanaries.placeholders`.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

__all__ = ["PREAMBLE", "PROBES", "Probe", "PERSISTENCE", "Persist", "judge", "source"]

# Refusals a jail gives: Landlock answers EACCES (or EPERM for some rights),
# seccomp EPERM; the kernel's own answer to a forbidden clone under
# RLIMIT_NPROC is EAGAIN.
DENIED = frozenset({"EPERM", "EACCES"})
NO_PROCESS = frozenset({"EPERM", "EACCES", "EAGAIN"})

PREAMBLE = '''
import ctypes, errno, os, signal, socket
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_AT_FDCWD = -100

def _name(code):
    return errno.errorcode.get(code, str(code))

def _arg(a):
    if isinstance(a, int):
        return ctypes.c_long(a)
    if isinstance(a, str):
        return ctypes.c_char_p(a.encode())
    return a

def _raw(nr, *args):
    """A raw system call: {"denied": errno} if it failed, {"done": rc} if not."""
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    if rc < 0:
        return {"denied": _name(ctypes.get_errno())}
    return {"done": rc}

def _try(action):
    try:
        value = action()
    except OSError as exc:
        return {"denied": _name(exc.errno) if exc.errno else type(exc).__name__}
    except RuntimeError as exc:  # "can't start new thread"
        return {"denied": type(exc).__name__}
    return {"done": repr(value)[:300]}

def _call_socket():
    """The descriptor of this call's socket (the host is its peer)."""
    for fd in range(3, 64):
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if s.family == socket.AF_UNIX:
                return fd
        finally:
            s.close()
    raise LookupError("no call socket")
'''


@dataclass(frozen=True)
class Probe:
    id: str
    description: str
    code: str  # the body of run(); PREAMBLE is in scope
    denied: frozenset[str] = DENIED
    # A probe the seccomp filter may answer by killing the process (a system
    # call of another ABI): a SIGSYS death is then a refusal too.
    may_kill: bool = False
    # A probe whose proof is that its target survived (checked after every
    # call: the zygote, the spares, the host): any answer the host gets is fine.
    survival: bool = False
    x86_64_only: bool = False
    # Part of the subset the ordinary-user driver runs.
    user: bool = False


def source(body: str) -> str:
    """The whole tool source of a probe (or a persistence step)."""
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return PREAMBLE + "\ndef run():\n" + lines + "\n"


def judge(probe: Probe, reply: dict[str, Any]) -> str | None:
    """Why a probe's outcome (a `Result` as a dict) is not a refusal made
    inside the child; None when it is."""
    error = reply.get("error") or {}
    if probe.survival and reply.get("status") in ("ok", "error", "limit"):
        return None
    if (
        probe.may_kill
        and reply.get("status") == "error"
        and error.get("type") == "SandboxCrash"
        and "SIGSYS" in str(error.get("message"))
    ):
        return None
    result = reply.get("result")
    if reply.get("status") != "ok" or not isinstance(result, dict):
        return f"expected the tool to return the errno it got, not {reply!r}"
    if result.get("denied") not in probe.denied:
        return f"expected a refusal in {sorted(probe.denied)}, got {result!r}"
    return None


def _p(id: str, description: str, code: str, **kw: object) -> Probe:
    return Probe(id, description, code, **kw)  # type: ignore[arg-type]


# x86_64 system call numbers (raw probes run only there).
_NR = {
    "openat": 257,
    "open": 2,
    "access": 21,
    "newfstatat": 262,
    "statx": 332,
    "unshare": 272,
    "ptrace": 101,
    "process_vm_readv": 310,
    "mount": 165,
    "chroot": 161,
    "bpf": 321,
    "io_uring_setup": 425,
    "keyctl": 250,
    "add_key": 248,
    "userfaultfd": 323,
    "perf_event_open": 298,
    "memfd_create": 319,
    "execveat": 322,
    "vfork": 58,
    "shmget": 29,
    "msgget": 68,
    "semget": 64,
    "mq_open": 240,
    "pidfd_open": 434,
    "open_by_handle_at": 304,
    "setns": 308,
    "ioctl": 16,
    "socket": 41,
    "kill": 62,
    "tkill": 200,
    "personality": 135,
    "seccomp": 317,
    "landlock_create_ruleset": 444,
    "get_robust_list": 274,
    "prlimit64": 302,
    "kcmp": 312,
    "move_pages": 279,
}
_X32 = 0x40000000

PROBES: list[Probe] = [
    # ------------------------------------------------------------------ files
    _p(
        "open-etc-passwd",
        "open() of a world-readable system file",
        'return _try(lambda: open("/etc/passwd").read())',
        user=True,
    ),
    _p(
        "open-secret",
        "open() of the secret file (world-readable)",
        'return _try(lambda: open("@SECRET_PATH@").read())',
        user=True,
    ),
    _p(
        "os-open-secret",
        "os.open() of the secret file",
        'return _try(lambda: os.read(os.open("@SECRET_PATH@", os.O_RDONLY), 100))',
    ),
    _p("listdir-root", "os.listdir('/')", 'return _try(lambda: os.listdir("/"))', user=True),
    _p(
        "listdir-secret-dir",
        "list the secret's directory (a hidden file name is the canary)",
        'return _try(lambda: os.listdir("@SECRET_DIR@"))',
        user=True,
    ),
    _p("scandir-cwd", "list the working directory", 'return _try(lambda: os.listdir("."))'),
    _p(
        "stat-secret",
        "os.stat of the secret: size, owner, times are a metadata leak",
        'return _try(lambda: tuple(os.stat("@SECRET_PATH@")))',
        user=True,
    ),
    _p(
        "lstat-hidden",
        "lstat of a guessed name tells whether it exists",
        'return _try(lambda: tuple(os.lstat("@SECRET_DIR@/secret.txt")))',
    ),
    _p("stat-proc", "stat of /proc", 'return _try(lambda: tuple(os.stat("/proc")))'),
    _p(
        "access-secret",
        "access() of the secret (raw, so a refusal is not folded into False)",
        "return _raw(" + str(_NR["access"]) + ', "@SECRET_PATH@", os.R_OK)',
        x86_64_only=True,
    ),
    _p(
        "newfstatat-empty-path-flag",
        "newfstatat with AT_EMPTY_PATH and a real path (passes a filter that only looks at the flag)",
        "buf = ctypes.create_string_buffer(256)\n"
        "return _raw(" + str(_NR["newfstatat"]) + ', _AT_FDCWD, "@SECRET_PATH@", buf, 0x1000)',
        x86_64_only=True,
    ),
    _p(
        "statx-secret",
        "statx of the secret",
        "buf = ctypes.create_string_buffer(512)\n"
        "return _raw(" + str(_NR["statx"]) + ', _AT_FDCWD, "@SECRET_PATH@", 0x1000, 0xfff, buf)',
        x86_64_only=True,
        user=True,
    ),
    _p("readlink-proc-exe", "readlink /proc/self/exe", 'return _try(lambda: os.readlink("/proc/self/exe"))'),
    _p("chmod-secret", "chmod the secret file", 'return _try(lambda: os.chmod("@SECRET_PATH@", 0o777))', user=True),
    _p("chmod-victim", "chmod a world-writable file", 'return _try(lambda: os.chmod("@VICTIM@", 0o600))'),
    _p("chown-victim", "chown a file", 'return _try(lambda: os.chown("@VICTIM@", os.getuid(), os.getgid()))'),
    _p("utime-secret", "touch the secret's times", 'return _try(lambda: os.utime("@SECRET_PATH@", (0, 0)))'),
    _p(
        "write-victim",
        "append to a world-writable file",
        'return _try(lambda: open("@VICTIM@", "a").write("owned"))',
        user=True,
    ),
    _p("truncate-victim", "truncate a world-writable file", 'return _try(lambda: os.truncate("@VICTIM@", 0))'),
    _p(
        "unlink-victim",
        "delete a file from a world-writable directory",
        'return _try(lambda: os.unlink("@VICTIM@"))',
        user=True,
    ),
    _p(
        "rename-victim",
        "rename a file in a world-writable directory",
        'return _try(lambda: os.rename("@VICTIM@", "@DROPBOX@/renamed"))',
    ),
    _p(
        "create-watched",
        "create a file in the watched directory",
        'return _try(lambda: open("@WATCH_DIR@/dropped.txt", "w").write("x"))',
        user=True,
    ),
    _p(
        "create-tmp",
        "create a file in the temp dir",
        'return _try(lambda: open("@TMP@file-@TOKEN@", "w").write("x"))',
        user=True,
    ),
    _p("mkdir-tmp", "make a directory in the temp dir", 'return _try(lambda: os.mkdir("@TMP@dir-@TOKEN@"))'),
    _p("mkfifo-tmp", "make a FIFO in the temp dir", 'return _try(lambda: os.mkfifo("@TMP@fifo-@TOKEN@"))'),
    _p(
        "symlink-watched",
        "symlink into the watched directory",
        'return _try(lambda: os.symlink("/etc/passwd", "@WATCH_DIR@/link"))',
    ),
    _p(
        "hardlink-victim",
        "hard-link a file into the watched directory",
        'return _try(lambda: os.link("@VICTIM@", "@WATCH_DIR@/hard"))',
    ),
    _p(
        "dev-shm",
        "create a file in /dev/shm",
        'return _try(lambda: open("/dev/shm/toolcrib-attack-shm-@TOKEN@", "w").write("x"))',
    ),
    _p(
        "open-dev-null",
        "open /dev/null (Landlock covers device files too)",
        'return _try(lambda: open("/dev/null", "rb").read())',
    ),
    _p(
        "proc-self-environ",
        "read /proc/self/environ",
        'return _try(lambda: open("/proc/self/environ", "rb").read())',
        user=True,
    ),
    _p("proc-self-maps", "read /proc/self/maps", 'return _try(lambda: open("/proc/self/maps").read())'),
    _p(
        "proc-self-mem",
        "open /proc/self/mem for writing (code injection)",
        'return _try(lambda: os.open("/proc/self/mem", os.O_RDWR))',
    ),
    _p(
        "proc-parent-cmdline",
        "read the zygote's command line",
        'return _try(lambda: open("/proc/%d/cmdline" % os.getppid(), "rb").read())',
        user=True,
    ),
    _p("proc-1-environ", "read pid 1's environment", 'return _try(lambda: open("/proc/1/environ", "rb").read())'),
    _p("sys-kernel", "read /sys", 'return _try(lambda: open("/sys/kernel/mm/transparent_hugepage/enabled").read())'),
    _p(
        "raw-openat",
        "openat through ctypes.CDLL(None).syscall",
        "return _raw(" + str(_NR["openat"]) + ', _AT_FDCWD, "@SECRET_PATH@", os.O_RDONLY)',
        x86_64_only=True,
        user=True,
    ),
    _p(
        "raw-open",
        "the legacy open system call",
        "return _raw(" + str(_NR["open"]) + ', "@SECRET_PATH@", os.O_RDONLY)',
        x86_64_only=True,
    ),
    _p(
        "open-by-handle",
        "open_by_handle_at (bypasses paths)",
        "return _raw(" + str(_NR["open_by_handle_at"]) + ", _AT_FDCWD, ctypes.create_string_buffer(64), 0)",
        x86_64_only=True,
    ),
    _p(
        "x32-openat",
        "openat through the x32 system-call ABI",
        "return _raw(" + str(_X32 | _NR["openat"]) + ', _AT_FDCWD, "@SECRET_PATH@", 0)',
        x86_64_only=True,
        may_kill=True,
    ),
    _p(
        "int80-open",
        "open through the 32-bit int 0x80 entry (another audit arch)",
        """
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
page = libc.mmap(None, 4096, 7, 0x22 | 0x40, -1, 0)  # RWX, private anonymous, below 4 GiB
if page in (None, ctypes.c_void_p(-1).value):
    return {"denied": _name(ctypes.get_errno())}
path = b"@SECRET_PATH@\\0"
ctypes.memmove(page + 64, path, len(path))
# push rbx; mov eax, 5 (i386 open); mov ebx, path; xor ecx, ecx; int 0x80; pop rbx; ret
code = b"\\x53\\xb8\\x05\\x00\\x00\\x00\\xbb" + (page + 64).to_bytes(4, "little") + b"\\x31\\xc9\\xcd\\x80\\x5b\\xc3"
ctypes.memmove(page, code, len(code))
rc = ctypes.CFUNCTYPE(ctypes.c_int)(page)()
if rc < 0:
    return {"denied": _name(-rc)}
return {"done": rc}
""",
        x86_64_only=True,
        may_kill=True,
    ),
    # ---------------------------------------------------------------- network
    _p("socket-inet", "socket.socket()", "return _try(lambda: socket.socket())", user=True),
    _p("socket-inet6-udp", "a UDP socket", "return _try(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))"),
    _p("socket-unix", "an AF_UNIX socket", "return _try(lambda: socket.socket(socket.AF_UNIX))"),
    _p("socket-netlink", "a netlink socket", "return _try(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW))"),
    _p("socketpair", "socket.socketpair()", "return _try(lambda: socket.socketpair())", user=True),
    _p(
        "connect-canary",
        "connect to the loopback canary listener",
        'return _try(lambda: socket.create_connection(("127.0.0.1", @CANARY_PORT@), timeout=2))',
        user=True,
    ),
    _p(
        "connect-unix-path",
        "connect to a world-connectable Unix socket of the host",
        'def go():\n    s = socket.socket(socket.AF_UNIX)\n    s.connect("@UNIX_PATH@")\n    return s\nreturn _try(go)',
        user=True,
    ),
    _p(
        "connect-unix-abstract",
        "connect to an abstract Unix socket of the host",
        'def go():\n    s = socket.socket(socket.AF_UNIX)\n    s.connect(b"\\0@ABSTRACT_NAME@")\n    return s\n'
        "return _try(go)",
        user=True,
    ),
    _p(
        "raw-socket",
        "the socket system call through ctypes",
        "return _raw(" + str(_NR["socket"]) + ", 2, 1, 0)",
        x86_64_only=True,
    ),
    # -------------------------------------------------------------- processes
    _p(
        "fork",
        "os.fork()",
        "def go():\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    return pid\nreturn _try(go)",
        denied=NO_PROCESS,
        user=True,
    ),
    _p("vfork", "vfork through ctypes", "return _raw(" + str(_NR["vfork"]) + ")", denied=NO_PROCESS, x86_64_only=True),
    _p(
        "thread",
        "threading.Thread().start() (or _thread when threading cannot be imported)",
        """
try:
    import threading
except ImportError:
    import _thread
    return _try(lambda: _thread.start_new_thread(lambda: None, ()))
return _try(lambda: threading.Thread(target=lambda: None).start())
""",
        denied=frozenset({"RuntimeError"}) | NO_PROCESS,
        user=True,
    ),
    _p("execv", "os.execv('/bin/sh')", 'return _try(lambda: os.execv("/bin/sh", ["sh", "-c", "true"]))', user=True),
    _p(
        "execveat",
        "execveat through ctypes",
        "return _raw(" + str(_NR["execveat"]) + ', _AT_FDCWD, "/bin/true", None, None, 0)',
        x86_64_only=True,
    ),
    _p(
        "posix-spawn",
        "os.posix_spawn",
        'return _try(lambda: os.posix_spawn("/bin/true", ["true"], {}))',
        denied=NO_PROCESS,
    ),
    _p(
        "cpu-clock-of-other-process",
        "read another process's CPU time through a process CPU clock id "
        "(a side channel on the host, and a covert channel between concurrent calls)",
        """
ts = (ctypes.c_long * 2)()
for pid in (1, os.getppid()):
    clock = ((~pid) << 3) | 2  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    ctypes.set_errno(0)
    if _libc.clock_gettime(ctypes.c_int(clock), ts) == 0:
        return {"done": [pid, ts[0], ts[1]]}
return {"denied": _name(ctypes.get_errno())}
""",
        denied=frozenset({"EPERM", "EACCES", "EINVAL"}),
    ),
    _p(
        "setsid",
        "leave the call's session (the wall-clock kill is for the whole group)",
        "return _try(lambda: os.setsid())",
        user=True,
    ),
    _p("setpgid", "leave the call's process group", "return _try(lambda: os.setpgid(0, 0))"),
    _p(
        "open-descriptors",
        "the child holds only stdio and its own call socket (a control socket or another "
        "call's socket would let it read other jobs)",
        """
held = []
for fd in range(0, 1024):
    if _raw(72, fd, 1, 0).get("done") is not None:  # fcntl(fd, F_GETFD) succeeds: fd is open
        held.append(fd)
extra = [fd for fd in held if fd > 2]
if len(extra) == 1 and held[:3] == [0, 1, 2]:
    return {"denied": "none-extra"}
return {"done": held}
""",
        denied=frozenset({"none-extra"}),
        x86_64_only=True,
        user=True,
    ),
    _p("kill-init", "os.kill(1, 0)", "return _try(lambda: os.kill(1, 0))", user=True),
    _p(
        "kill-zygote",
        "os.kill(os.getppid(), SIGKILL)",
        "return _try(lambda: os.kill(os.getppid(), signal.SIGKILL))",
        user=True,
    ),
    _p(
        "kill-everyone",
        "os.kill(-1, 0): could this call signal anyone at all?",
        "return _try(lambda: os.kill(-1, 0))",
        user=True,
    ),
    _p(
        "killpg-zygote",
        "signal the zygote's process group",
        "return _try(lambda: os.killpg(os.getpgid(os.getppid()), 0))",
    ),
    _p(
        "kill-siblings",
        "signal 0 to the pids around this one (sibling calls and spares)",
        """
me = os.getpid()
reached = []
for pid in range(max(2, me - 40), me + 40):
    if pid == me:
        continue
    try:
        os.kill(pid, 0)
        reached.append(pid)
    except OSError:
        pass
return {"done": reached} if reached else {"denied": "EPERM"}
""",
        user=True,
    ),
    _p(
        "kill-host",
        "signal the host process (its pid from SO_PEERCRED on the call socket)",
        """
import struct
s = socket.socket(fileno=os.dup(_call_socket()))
creds = _try(lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
if "denied" in creds:
    return creds  # the jail will not even say who the host is
pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
return _try(lambda: os.kill(pid, 0))
""",
        user=True,
    ),
    _p(
        "tkill-zygote",
        "tkill of the zygote's main thread",
        "return _raw(" + str(_NR["tkill"]) + ", os.getppid(), 0)",
        x86_64_only=True,
    ),
    _p(
        "ptrace-attach-zygote",
        "ptrace(PTRACE_ATTACH) the zygote",
        "return _raw(" + str(_NR["ptrace"]) + ", 16, os.getppid(), 0, 0)",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "ptrace-traceme",
        "ptrace(PTRACE_TRACEME)",
        "return _raw(" + str(_NR["ptrace"]) + ", 0, 0, 0, 0)",
        x86_64_only=True,
    ),
    _p(
        "process-vm-readv-zygote",
        "read the zygote's memory (and so every later call's) with process_vm_readv",
        """
buf = ctypes.create_string_buffer(64)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 64)
remote = (ctypes.c_void_p * 2)(id(None), 64)
return _raw("""
        + str(_NR["process_vm_readv"])
        + """, os.getppid(), local, 1, remote, 1, 0)
""",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "process-vm-readv-siblings",
        "read the memory of the pids around this one",
        """
buf = ctypes.create_string_buffer(64)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 64)
remote = (ctypes.c_void_p * 2)(id(None), 64)
me = os.getpid()
read = []
errors = set()
for pid in range(max(2, me - 20), me + 20):
    if pid == me:
        continue
    got = _raw("""
        + str(_NR["process_vm_readv"])
        + """, pid, local, 1, remote, 1, 0)
    if "done" in got:
        read.append(pid)
    else:
        errors.add(got["denied"])
if read:
    return {"done": read}
return {"denied": "EPERM" if "EPERM" in errors else sorted(errors)[0]}
""",
        denied=frozenset({"EPERM", "EACCES"}),
        x86_64_only=True,
        user=True,
    ),
    _p(
        "pidfd-open-zygote",
        "pidfd_open of the zygote (then pidfd_getfd could steal its descriptors)",
        "return _raw(" + str(_NR["pidfd_open"]) + ", os.getppid(), 0)",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "get-robust-list-zygote",
        "get_robust_list of the zygote (a pointer leak, checked like ptrace)",
        """
head = ctypes.c_void_p()
size = ctypes.c_size_t()
return _raw("""
        + str(_NR["get_robust_list"])
        + """, os.getppid(), ctypes.byref(head), ctypes.byref(size))
""",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "prlimit-zygote",
        "lower the zygote's limits with prlimit64",
        "return _raw(" + str(_NR["prlimit64"]) + ", os.getppid(), 7, (ctypes.c_ulong * 2)(3, 3), None)",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "setpriority-zygote",
        "renice the zygote",
        "return _try(lambda: os.setpriority(os.PRIO_PROCESS, os.getppid(), 19))",
    ),
    _p(
        "sched-setaffinity-zygote",
        "pin the zygote to one CPU",
        "return _try(lambda: os.sched_setaffinity(os.getppid(), {0}))",
    ),
    _p(
        "kcmp-zygote",
        "kcmp against the zygote (compares kernel objects across processes)",
        "return _raw(" + str(_NR["kcmp"]) + ", os.getpid(), os.getppid(), 0, 0, 0)",
        x86_64_only=True,
    ),
    _p(
        "move-pages-zygote",
        "move_pages of the zygote (reads its page placement)",
        "return _raw(" + str(_NR["move_pages"]) + ", os.getppid(), 0, None, None, None, 0)",
        x86_64_only=True,
    ),
    _p(
        "sigio-owner-zygote",
        "make the zygote the owner of the call socket, with SIGKILL as its I/O signal",
        """
fd = _call_socket()
F_SETOWN, F_SETSIG, F_GETFL, F_SETFL, O_ASYNC = 8, 10, 3, 4, 0o20000
got = _raw(72, fd, F_SETOWN, os.getppid())  # fcntl
if "denied" in got:
    return got
_raw(72, fd, F_SETSIG, signal.SIGKILL)
_raw(72, fd, F_SETFL, os.O_NONBLOCK | O_ASYNC)
try:
    while True:  # fill the socket: the host draining it is an I/O event
        os.write(fd, b" " * 65536)
except OSError:
    pass
import time
time.sleep(0.3)
return {"denied": "survived"}
""",
        survival=True,
        x86_64_only=True,
        user=True,
    ),
    _p(
        "sigio-owner-host",
        "make the host the owner of the call socket, with SIGKILL as its I/O signal",
        """
import struct
fd = _call_socket()
s = socket.socket(fileno=os.dup(fd))
try:
    host = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
except OSError:
    host = os.getppid()  # SO_PEERCRED refused: aim at the zygote instead
F_SETOWN, F_SETSIG, F_SETFL, O_ASYNC = 8, 10, 4, 0o20000
got = _raw(72, fd, F_SETOWN, host)
if "denied" in got:
    return got
_raw(72, fd, F_SETSIG, signal.SIGKILL)
_raw(72, fd, F_SETFL, os.O_NONBLOCK | O_ASYNC)
try:
    while True:
        os.write(fd, b" " * 65536)
except OSError:
    pass
import time
time.sleep(0.3)
return {"denied": "survived"}
""",
        survival=True,
        x86_64_only=True,
        user=True,
    ),
    # ------------------------------------------------------------- namespaces
    _p(
        "unshare-user",
        "unshare(CLONE_NEWUSER): a fresh user namespace grants capabilities inside it",
        "return _raw(" + str(_NR["unshare"]) + ", 0x10000000)",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "unshare-net", "unshare(CLONE_NEWNET)", "return _raw(" + str(_NR["unshare"]) + ", 0x40000000)", x86_64_only=True
    ),
    _p(
        "unshare-mount",
        "unshare(CLONE_NEWNS)",
        "return _raw(" + str(_NR["unshare"]) + ", 0x00020000)",
        x86_64_only=True,
    ),
    _p("setns", "setns on descriptor 0", "return _raw(" + str(_NR["setns"]) + ", 0, 0)", x86_64_only=True),
    _p(
        "mount-tmpfs",
        "mount a tmpfs over /tmp",
        "return _raw(" + str(_NR["mount"]) + ', "none", "/tmp", "tmpfs", 0, None)',
        x86_64_only=True,
    ),
    _p("chroot", "chroot('/')", "return _raw(" + str(_NR["chroot"]) + ', "/")', x86_64_only=True),
    # -------------------------------------------------------- kernel surfaces
    _p(
        "bpf",
        "bpf(BPF_PROG_LOAD)",
        "return _raw(" + str(_NR["bpf"]) + ", 5, ctypes.create_string_buffer(128), 128)",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "io-uring-setup",
        "io_uring_setup",
        "return _raw(" + str(_NR["io_uring_setup"]) + ", 8, ctypes.create_string_buffer(120))",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "keyctl",
        "keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING)",
        "return _raw(" + str(_NR["keyctl"]) + ", 0, -4, 0)",
        x86_64_only=True,
    ),
    _p(
        "add-key",
        "add_key to the session keyring",
        "return _raw(" + str(_NR["add_key"]) + ', "user", "toolcrib-attack", "x", 1, -3)',
        x86_64_only=True,
    ),
    _p("userfaultfd", "userfaultfd", "return _raw(" + str(_NR["userfaultfd"]) + ", 0)", x86_64_only=True),
    _p(
        "perf-event-open",
        "perf_event_open",
        "return _raw(" + str(_NR["perf_event_open"]) + ", ctypes.create_string_buffer(128), 0, -1, -1, 0)",
        x86_64_only=True,
    ),
    _p(
        "memfd-create",
        "memfd_create (an executable anonymous file)",
        "return _raw(" + str(_NR["memfd_create"]) + ', "toolcrib-attack", 0)',
        x86_64_only=True,
    ),
    _p(
        "personality",
        "personality(READ_IMPLIES_EXEC)",
        "return _raw(" + str(_NR["personality"]) + ", 0x0400000)",
        x86_64_only=True,
    ),
    _p(
        "seccomp-own-filter",
        "install a seccomp filter of its own (user notification tricks)",
        "return _raw(" + str(_NR["seccomp"]) + ", 1, 0, None)",
        denied=frozenset({"EPERM", "EACCES", "EFAULT"}),
        x86_64_only=True,
    ),
    _p(
        "tiocsti",
        "push characters into a terminal with TIOCSTI on descriptor 0",
        "return _raw(" + str(_NR["ioctl"]) + ', 0, 0x5412, ctypes.c_char_p(b"x"))',
        x86_64_only=True,
    ),
    _p(
        "sysv-shm",
        "SysV shared memory",
        "return _raw(" + str(_NR["shmget"]) + ", 0x7bc0ffee, 4096, 0o1666)",
        x86_64_only=True,
        user=True,
    ),
    _p(
        "sysv-msg",
        "SysV message queue",
        "return _raw(" + str(_NR["msgget"]) + ", 0x7bc0ffee, 0o1666)",
        x86_64_only=True,
    ),
    _p(
        "sysv-sem", "SysV semaphore", "return _raw(" + str(_NR["semget"]) + ", 0x7bc0ffee, 1, 0o1666)", x86_64_only=True
    ),
    _p(
        "posix-mqueue",
        "POSIX message queue",
        "return _raw(" + str(_NR["mq_open"]) + ', "toolcrib-attack-mq", 0o102, 0o666, None)',
        x86_64_only=True,
    ),
    # ---------------------------------------------------------------- memory
    _p(
        "mmap-huge",
        "an anonymous 1 TiB mapping (no backing file; only the memory limit stops it)",
        """
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
ctypes.set_errno(0)
addr = libc.mmap(None, 1 << 40, 3, 0x22 | 0x4000, -1, 0)  # RW, private anonymous, no reserve
if addr in (None, ctypes.c_void_p(-1).value):
    return {"denied": _name(ctypes.get_errno())}
return {"done": addr}
""",
        denied=frozenset({"ENOMEM"}),
        user=True,
    ),
    _p(
        "landlock-new-domain",
        "create a Landlock ruleset (harmless, but not for tools)",
        "return _raw(" + str(_NR["landlock_create_ruleset"]) + ", None, 0, 1)",
        x86_64_only=True,
    ),
]


@dataclass(frozen=True)
class Persist:
    """One call tries to leave something behind; a later call looks for it.
    ``write`` and ``read`` are run() bodies; ``@MARK@`` is a fresh token the
    reader must never return."""

    id: str
    description: str
    write: str
    read: str
    user: bool = False
    # The write itself reaches outside the process, so the jail must refuse
    # it (an in-process change, like the environment, may succeed: it dies
    # with the call).
    write_refused: bool = True


PERSISTENCE: list[Persist] = [
    Persist(
        "tmp-file",
        "a file in the temp dir",
        'return _try(lambda: open("@TMP@persist-@MARK@", "w").write("@MARK@"))',
        'return _try(lambda: open("@TMP@persist-@MARK@").read())',
        user=True,
    ),
    Persist(
        "dev-shm",
        "a file in /dev/shm",
        'return _try(lambda: open("/dev/shm/toolcrib-attack-@MARK@", "w").write("@MARK@"))',
        'return _try(lambda: open("/dev/shm/toolcrib-attack-@MARK@").read())',
        user=True,
    ),
    Persist(
        "watched-dir",
        "a file in the watched directory",
        'return _try(lambda: open("@WATCH_DIR@/@MARK@", "w").write("@MARK@"))',
        'return _try(lambda: os.listdir("@WATCH_DIR@"))',
    ),
    Persist(
        "abstract-socket",
        "an abstract Unix socket left listening",
        """
def go():
    s = socket.socket(socket.AF_UNIX)
    s.bind(b"\\0toolcrib-attack-@MARK@")
    s.listen(1)
    return s
return _try(go)
""",
        """
def go():
    s = socket.socket(socket.AF_UNIX)
    s.connect(b"\\0toolcrib-attack-@MARK@")
    return "@MARK@"
return _try(go)
""",
        user=True,
    ),
    Persist(
        "environment",
        "a variable set in the call's environment",
        """
os.environ["TOOLCRIB_ATTACK"] = "@MARK@"
os.putenv("TOOLCRIB_ATTACK_PUT", "@MARK@")
return {"done": "set"}
""",
        'return {"done": [os.environ.get("TOOLCRIB_ATTACK"), os.environ.get("TOOLCRIB_ATTACK_PUT")]}',
        user=True,
        write_refused=False,
    ),
    Persist(
        "module-state",
        "poisoned modules and builtins (json, collections, builtins, sys.modules)",
        """
import builtins, collections, json, sys
json.dumps = lambda *a, **k: "@MARK@"
collections.Counter = lambda *a, **k: "@MARK@"
builtins.len = lambda x: "@MARK@"
builtins.TOOLCRIB_ATTACK = "@MARK@"
sys.modules["toolcrib_attack"] = "@MARK@"
return {"done": "poisoned"}
""",
        """
import builtins, collections, json, sys
seen = [json.dumps([1]), repr(collections.Counter("a")), repr(len([1])),
        getattr(builtins, "TOOLCRIB_ATTACK", None), repr(sys.modules.get("toolcrib_attack"))]
return {"done": seen}
""",
        user=True,
        write_refused=False,
    ),
    Persist(
        "sysv-shm",
        "a SysV shared-memory segment",
        "return _raw(29, 0x7bc0ffee, 4096, 0o1666)",
        'got = _raw(29, 0x7bc0ffee, 4096, 0o666)\nreturn {"done": "@MARK@"} if "done" in got else got',
    ),
    Persist(
        "signal-siblings",
        "SIGSTOP to the pids around this one: the spares that will serve the next calls",
        """
me = os.getpid()
stopped = []
for pid in range(max(2, me - 40), me + 40):
    if pid != me:
        try:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        except OSError:
            pass
return {"done": stopped} if stopped else {"denied": "EPERM"}
""",
        'return {"done": "served"}',
        user=True,
    ),
    Persist(
        "signal-zygote",
        "the zygote killed, so the next call meets a new one (or none)",
        "return _try(lambda: os.kill(os.getppid(), signal.SIGKILL))",
        'return {"done": os.getppid()}',
        user=True,
    ),
]

if platform.machine() not in ("x86_64", "AMD64"):  # raw numbers above are x86_64's
    PROBES = [p for p in PROBES if not p.x86_64_only]
    PERSISTENCE = [p for p in PERSISTENCE if p.id != "sysv-shm"]
