"""`Registry.call` ended by an exception before its result (an interrupt,
a backend that breaks its contract by raising) still writes the call's audit
entry, then lets the exception go on. (The CLI's own case, a signalled
`toolcrib call`, is tests/cli/test_call_interrupted.py.) A fake backend: the
sandbox is not what is tested."""

from __future__ import annotations

from pathlib import Path

import pytest
from toolcrib.sandbox.fake import FakeBackend

from toolcrib import Registry


class _Broken(FakeBackend):
    """A backend that breaks its contract: `run` raises."""

    def run(self, job, cancel=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("the backend's own bug")


def _interrupt(job: object) -> object:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("backend", "raised", "status", "error_type"),
    [
        (FakeBackend(_interrupt, name="restricted"), KeyboardInterrupt, "cancelled", "Cancelled"),
        (_Broken(name="restricted"), RuntimeError, "unavailable", "InternalError"),
    ],
)
def test_through_the_api_a_call_an_exception_ends_is_still_audited(
    tmp_path: Path, backend: FakeBackend, raised: type[BaseException], status: str, error_type: str
) -> None:
    with Registry(tmp_path / "r.db", actor="t", backends={"restricted": backend}) as reg:
        reg.add('def one() -> int:\n    """One."""\n    return 1\n')
        with pytest.raises(raised):
            reg.call("one", allow_unverified=True)
        (entry,) = reg.audit(event="call")
    assert (entry.details["status"], entry.details["error_type"]) == (status, error_type)
    if error_type == "InternalError":
        assert entry.details["error_message"] == "RuntimeError: the backend's own bug"
