"""A second zygote for calls side by side (issue 19, throughput): a call
that comes while the zygote is busy goes to another one, started on first
need and jailed the same way; one at a time, the first zygote serves all."""

from __future__ import annotations

from toolcrib.sandbox.contract import Job
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
