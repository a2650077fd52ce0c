"""A second zygote for calls side by side (issue 19, throughput): a call
that comes while the zygote is busy goes to another one, started on first
need and jailed the same way; one at a time, the first zygote serves all."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from toolcrib.sandbox.contract import Job, Limits
from toolcrib.sandbox.inside.zygote import CALL_UID_SLOTS, _own_slots
from toolcrib.sandbox.restricted import RestrictedBackend

ADD = Job(source="def add(a, b):\n    return a + b\n", entrypoint="add", args={"a": 2, "b": 3})


def test_a_call_while_the_zygote_is_busy_goes_to_a_second_one_jailed_alike() -> None:
    backend = RestrictedBackend(zygotes=2)
    try:
        first = backend._current()  # a call in flight on the first zygote
        second = backend._current()  # the next one, while it is busy
        try:
            assert second is not first and second.proc.pid != first.proc.pid
            assert second.layers == first.layers and second.missing == first.missing
        finally:
            backend._release(first)
            backend._release(second)
        # Idle again: the first zygote serves a call made alone.
        third = backend._current()
        backend._release(third)
        assert third is first
        result = backend.run(ADD)
        assert (result.status, result.result) == ("ok", 5)
    finally:
        backend.close()
    assert not first.alive() and not second.alive()  # close stops both


def test_one_zygote_when_asked_for_one() -> None:
    backend = RestrictedBackend(zygotes=1)
    try:
        first = backend._current()
        second = backend._current()
        backend._release(first)
        backend._release(second)
        assert second is first
    finally:
        backend.close()


def test_a_dead_second_zygote_is_replaced() -> None:
    backend = RestrictedBackend(zygotes=2)
    try:
        first = backend._current()
        second = backend._current()
        backend._release(second)
        backend._discard(second)  # as a hung or dead zygote is
        replacement = backend._current()
        try:
            assert replacement is not second and replacement is not first and replacement.alive()
        finally:
            backend._release(replacement)
            backend._release(first)
        assert backend.run(ADD).result == 5
    finally:
        backend.close()


def test_calls_side_by_side_on_two_zygotes_never_share_a_uid() -> None:
    """Each zygote of a backend hands its children its own share of the uid
    slots (`--slots=i/n`), so two calls running at once see different uids
    even inside their user namespaces, whichever zygote forked them (before,
    each zygote numbered its children from 1: both saw uid 1)."""
    if os.geteuid() != 0:
        pytest.skip("the uid switch needs a root host")
    source = (
        "import os, time\n"
        "def f():\n"
        "    start = time.monotonic()\n"
        "    time.sleep(1.0)\n"
        "    return [os.getuid(), start, time.monotonic()]\n"
    )
    job = Job(source=source, entrypoint="f", policy="plain", limits=Limits(cpu=2, wall=30, memory=128, output=64))
    backend = RestrictedBackend(zygotes=2)
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: backend.run(job), range(4)))
        assert backend._others[0] is not None  # the second zygote took calls too
    finally:
        backend.close()
    runs = []
    for result in results:
        assert result.status == "ok", result
        runs.append(result.result)
    overlapping = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :] if a[1] < b[2] and b[1] < a[2]]
    assert overlapping  # four one-second calls at once: some ran at the same time
    for a, b in overlapping:
        assert a[0] != b[0], (a, b)
    assert all(run[0] != 0 for run in runs)


def test_the_zygotes_of_a_backend_share_out_the_slots() -> None:
    for count in (1, 2, 3):
        shares = [set(_own_slots(index, count)) for index in range(count)]
        assert set().union(*shares) == set(range(1, CALL_UID_SLOTS))
        assert sum(len(share) for share in shares) == CALL_UID_SLOTS - 1  # disjoint
        for share in shares:
            assert 0 not in share  # the zygote's own id


def test_asking_about_a_busy_backend_starts_no_second_zygote() -> None:
    """`info` (doctor, the tests' process watch) and `start` are about the
    first zygote: asked while a call keeps it busy, they neither start a
    second one nor report it instead."""
    backend = RestrictedBackend(zygotes=2)
    try:
        first = backend._current()  # a call in flight
        try:
            info = backend.info()
            backend.start()
            assert info["zygote_pid"] == first.proc.pid
            assert backend._others == [None]
        finally:
            backend._release(first)
    finally:
        backend.close()
