"""Machine-wide call uids (issue 15, item 2): no two live calls on the host
share a uid, whichever zygote or host process started them.

Every zygote claims a block of uids with an exclusive flock on that block's
lock file (sandbox/uids.py) and holds it while it lives; its children run as
block base + slot. Checked on the host's view of real processes (a child's
own getuid() is its in-namespace slot), with calls in flight in two
zygotes at once; and the lock is gone from /proc/locks once a zygote stops.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from toolcrib.sandbox.contract import Job, Limits
from toolcrib.sandbox.inside import uids, zygote
from toolcrib.sandbox.restricted import RestrictedBackend

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root allocates call uids")

# Holds the call (its child) open until the test has looked at the processes.
WAIT = """
def wait(seconds: float) -> int:
    import time
    time.sleep(seconds)
    return 1
"""


def _children(pid: int, but: int | None = None) -> dict[int, int]:
    """child pid -> real uid (the host's view), from /proc; without those
    still at uid ``but`` (a child just forked, before its lock-down switches
    it to its slot: no tool code runs before that)."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        uid = int(fields["Uid"].split()[0])
        if int(fields["PPid"]) == pid and fields["State"].split()[0] != "Z" and uid != but:
            found[int(entry)] = uid
    return found


def _lock_holders(path: Path) -> set[int]:
    """pids holding a flock on this file, from /proc/locks."""
    inode = os.stat(path).st_ino
    holders = set()
    with open("/proc/locks", encoding="ascii") as fh:
        for line in fh:
            fields = line.split()
            if "FLOCK" in fields and fields[-3].split(":")[-1] == str(inode):
                holders.add(int(fields[-4]))
    return holders


def test_the_zygote_and_the_allocator_agree_on_the_numbers() -> None:
    assert (zygote.CALL_UID_BASE, zygote.CALL_UID_SLOTS) == (uids.BASE, uids.BLOCK_SIZE)
    assert uids.BASE + uids.BLOCKS * uids.BLOCK_SIZE <= 2**32 - 1


def test_blocks_are_exclusive_and_released_with_their_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(uids.BLOCK_DIR_ENV, str(tmp_path / "blocks"))
    first, second = uids.claim(), uids.claim()
    assert first.index != second.index and first.base != second.base
    assert stat.S_IMODE(os.stat(tmp_path / "blocks").st_mode) == 0o700
    first.release()
    again = uids.claim()
    assert again.index == first.index  # free again once the descriptor closed
    for block in (second, again):
        block.release()


def test_a_directory_others_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(uids.BLOCK_DIR_ENV, str(shared))
    with pytest.raises(PermissionError):
        uids.claim()


def test_a_slot_pool_hands_out_each_uid_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(uids.BLOCK_DIR_ENV, str(tmp_path / "blocks"))
    pool = uids.SlotPool()
    taken = [pool.take() for _ in range(uids.BLOCK_SIZE + 3)]  # past one block: a second is claimed
    assert len(set(taken)) == len(taken)
    assert all(uids.BASE <= uid < 2**32 - 1 for uid in taken)
    pool.release(taken[0])
    assert pool.take() == taken[0]
    pool.close()


@root_only
def test_two_zygotes_with_calls_in_flight_share_no_uid() -> None:
    # One zygote each: the calls below must run on the zygote watched.
    backends = [RestrictedBackend(spares=2, zygotes=1), RestrictedBackend(spares=2, zygotes=1)]
    try:
        for backend in backends:
            backend.start()
        zygotes = [backend._current() for backend in backends]
        blocks = [z.facts["uid_block"] for z in zygotes]
        assert blocks[0] != blocks[1]
        job = Job(source=WAIT, entrypoint="wait", args={"seconds": 3.0}, policy="plain", limits=Limits(wall=20, cpu=5))
        results: list[object] = []
        threads = [threading.Thread(target=lambda b=b: results.append(b.run(job))) for b in backends for _ in range(2)]
        for thread in threads:
            thread.start()
        # Until both calls of each zygote are in flight beside its refilled
        # spares (a hang guard, not a timing assertion).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            children = [_children(z.proc.pid, but=block) for z, block in zip(zygotes, blocks)]
            if all(len(c) >= 4 for c in children):
                break
            time.sleep(0.02)
        seen: dict[int, int] = {}
        for z, block, mine in zip(zygotes, blocks, children):
            assert len(mine) >= 3, mine
            for pid, uid in mine.items():
                assert block < uid < block + uids.BLOCK_SIZE, (pid, uid, block)
                seen[pid] = uid
            # The zygote itself runs as its block's base, not as root.
            assert _children(os.getpid())[z.proc.pid] == block
        assert len(set(seen.values())) == len(seen), seen
        for thread in threads:
            thread.join(30)
        assert [getattr(r, "status", None) for r in results] == ["ok"] * 4, results
    finally:
        for backend in backends:
            backend.close()


@root_only
def test_a_stopped_zygote_releases_its_block() -> None:
    backend = RestrictedBackend(spares=1)
    backend.start()
    running = backend._current()
    index = (running.facts["uid_block"] - uids.BASE) // uids.BLOCK_SIZE
    lock_file = Path(uids.block_dir()) / f"{index}.lock"
    assert _lock_holders(lock_file) == {running.proc.pid}
    backend.close()
    assert running.proc.pid not in _lock_holders(lock_file)


WHO = """
def who() -> int:
    import os
    return os.getuid()
"""


@root_only
@pytest.mark.docker
def test_docker_containers_run_as_their_own_call_uids(docker_image: str) -> None:
    from toolcrib.sandbox.docker import LABEL_BACKEND, DockerBackend

    restricted = RestrictedBackend(spares=1)
    backend = DockerBackend(pool_size=2)
    try:
        restricted.start()
        block = restricted._current().facts["uid_block"]
        assert backend.warm(timeout=120)
        api = backend._client.api
        warm = api.containers(filters={"label": f"{LABEL_BACKEND}={backend._owner}"})
        users = [api.inspect_container(c["Id"])["Config"]["User"] for c in warm]
        assert len(users) == 2 and len(set(users)) == 2, users
        result = backend.run(Job(source=WHO, entrypoint="who", policy="plain"))
        assert result.status == "ok", result
        for uid in [int(u.split(":")[0]) for u in users] + [result.result]:
            # A call uid of this process's own block: not the image's shared
            # user, and none of the zygote's.
            assert uids.BASE <= uid < 2**32 - 1 and not block <= uid < block + uids.BLOCK_SIZE, (uid, block)
    finally:
        backend.close()
        restricted.close()
