"""Machine-wide blocks of call uids, so no two live calls on the host share a
uid, whichever zygote or host process started them.

The range above `BASE` is cut into blocks of `BLOCK_SIZE` uids. A process
claims a block by taking an exclusive ``flock`` on that block's lock file
(``/run/toolcrib/uid-blocks/<n>.lock``, directory 0700 root) and holds it
for as long as the descriptor stays open: the kernel drops the lock when the
last descriptor of it closes, so a process that dies, however it dies,
releases its block. Nothing is ever written to the files; they are created
on first use and reused.

- A restricted-backend zygote claims one block before it enters its jail
  and keeps the descriptor for its lifetime (its children close it with
  every other descriptor they were not given). It maps its user namespace's
  ids 0..BLOCK_SIZE-1 to the block: itself in-namespace 0, each child its
  own slot 1..BLOCK_SIZE-1.
- The Docker backend claims blocks through a `SlotPool` and runs each
  container as one slot's uid:gid, held until the container is removed.

Only root allocates (the directory is root's). An ordinary user's calls keep
that user's uid in their own user namespace; the jail's other layers stand
in (see docs/sandbox-restricted.md).

Imports only the standard library (the zygote loads it without toolcrib).
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os

__all__ = ["BASE", "BLOCK_SIZE", "BLOCK_DIR_ENV", "Block", "SlotPool", "UidsExhausted", "block_dir", "claim"]

# Far above ordinary users and the usual subordinate-id ranges.
BASE: int = 2_000_000_000
# uids per block: a zygote never runs more children than BLOCK_SIZE - 1 at
# once (in-namespace 0 is the zygote itself); past that a call waits on the
# control socket for a slot to come free.
BLOCK_SIZE: int = 4096
# The last block ends below 2**32 - 1 ((uid_t) -1 means "unchanged").
BLOCKS: int = (2**32 - 2 - BASE) // BLOCK_SIZE
# Where the lock files live; tests point it at a directory of their own.
BLOCK_DIR_ENV = "TOOLCRIB_UID_BLOCK_DIR"
_DEFAULT_DIR = "/run/toolcrib/uid-blocks"


class UidsExhausted(Exception):
    """Every block is held by a live process."""


def block_dir() -> str:
    return os.environ.get(BLOCK_DIR_ENV) or _DEFAULT_DIR


def _open_dir(path: str) -> int:
    os.makedirs(path, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    st = os.fstat(fd)
    # Only a directory no one else can write holds meaningful locks: another
    # user able to create or replace the files could hold every block.
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise PermissionError(errno.EPERM, f"{path} must be owned by uid {os.geteuid()} and not group/world-writable")
    return fd


class Block:
    """One claimed block: uids ``base .. base + BLOCK_SIZE - 1``, held while
    ``fd`` is open."""

    __slots__ = ("index", "base", "fd")

    def __init__(self, index: int, fd: int) -> None:
        self.index = index
        self.base = BASE + index * BLOCK_SIZE
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


def claim(start: int = 0) -> Block:
    """Claim the lowest free block (from ``start``). The descriptor is
    close-on-exec and must be inherited by nothing else. Raises
    UidsExhausted, or OSError when the directory cannot be made."""
    dir_fd = _open_dir(block_dir())
    try:
        for index in range(start, BLOCKS):
            fd = os.open(f"{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return Block(index, fd)
    finally:
        os.close(dir_fd)
    raise UidsExhausted(f"all {BLOCKS} uid blocks in {block_dir()} are held")


class SlotPool:
    """Single uids for processes that are not zygotes (the Docker backend's
    containers): claims blocks on demand and hands out their uids one at a
    time; a uid is free again once `release`d. Thread-safe."""

    def __init__(self) -> None:
        # `_thread`'s lock (what threading.Lock is), not `threading`: the
        # zygote imports this module, and `threading` would register an
        # after-fork hook every child then runs (0.1-0.2 ms and ~90 page
        # faults a call, bench/README.md).
        self._lock = _thread.allocate_lock()
        self._blocks: list[Block] = []
        self._free: list[int] = []

    def take(self) -> int:
        with self._lock:
            if not self._free:
                start = self._blocks[-1].index + 1 if self._blocks else 0
                block = claim(start)
                self._blocks.append(block)
                self._free.extend(range(block.base + BLOCK_SIZE - 1, block.base - 1, -1))
            return self._free.pop()

    def release(self, uid: int) -> None:
        with self._lock:
            if any(b.base <= uid < b.base + BLOCK_SIZE for b in self._blocks) and uid not in self._free:
                self._free.append(uid)

    def close(self) -> None:
        """Release every block (only once no uid of them is in use)."""
        with self._lock:
            for block in self._blocks:
                block.release()
            self._blocks.clear()
            self._free.clear()
