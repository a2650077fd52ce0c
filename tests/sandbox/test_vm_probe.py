"""The address space a spare measures before it enters the jail
(`zygote._vm_bytes`): its memory limit is that plus the job's allowance.
Started from the zygote's own size (`_bracket`), the search must land on
the very page the search over the whole range finds."""

from __future__ import annotations

import json
import os

from toolcrib.sandbox.inside import zygote


def _in_child(body) -> object:
    """Run `body` in a forked child (the probe lowers RLIMIT_AS for a moment:
    not in the test process, whose other threads may be allocating)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.write(write_fd, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return json.loads(data)


def _compare() -> list[list[int]]:
    page = zygote._PAGE
    pairs = []
    for offset in (0, 1, -1, 63, -64, 1000, -5000, 300_000, -300_000):
        zygote._vm_hint_pages = None
        whole = zygote._vm_bytes()
        zygote._vm_hint_pages = whole // page + offset
        hinted = zygote._vm_bytes()
        zygote._vm_hint_pages = None
        again = zygote._vm_bytes()
        if whole == again:  # nothing mapped or unmapped in between
            pairs.append([whole, hinted])
    return pairs


def test_the_search_from_the_zygotes_size_finds_the_same_page() -> None:
    pairs = _in_child(_compare)
    assert isinstance(pairs, list) and len(pairs) >= 5, pairs
    for whole, hinted in pairs:
        assert hinted == whole


def test_a_hint_out_of_range_falls_back_to_the_whole_range() -> None:
    top = 1 << 32
    for hint in (None, 0, top, top + 5, -3):
        zygote._vm_hint_pages = hint
        try:
            assert zygote._bracket(top) == (0, top + 1)
        finally:
            zygote._vm_hint_pages = None
