"""Every attack corpus of the project through the wasm backend, with the
policy on (the corpus's own expectations, less the few the guest answers
otherwise, each with its reason below) and off (plain Python in the guest:
only the WebAssembly walls stand between the code and the canaries), and the
shared catalogue of known escapes (``../shared/security/escapes.json``,
read where it lies beside the checkout, never copied into the project).

`test_attacks.py` leaves wasm to this file (tests/attacks/conftest.py):
the corpus's expectations were written for CPython 3.11 on a 64-bit host,
and the guest is CPython 3.15 on wasm32.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from toolcrib.sandbox import Job, Limits, run

from .catalogue import CATALOGUE
from .corpus import ATTACKS, Attack
from .test_attacks import Canaries, _job

pytestmark = pytest.mark.usefixtures("wasm_ready")

ESCAPES = Path(__file__).resolve().parents[3] / "shared" / "security" / "escapes.json"

# Where the guest answers an attack otherwise than CPython 3.11 on x86-64,
# still contained: (the statuses it gives, the error types or refusal phrase).
_ON_WASM: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    # wasm32 is a 32-bit platform: a 10 GB string or a list of 10**18 items
    # cannot even be asked for (OverflowError: the size does not fit a
    # Py_ssize_t), so no memory is used and there is no limit to hit.
    "res-memory-string": (frozenset({"error"}), frozenset({"OverflowError"}), ""),
    "cat-res-memory-string": (frozenset({"error"}), frozenset({"OverflowError"}), ""),
    # The same 32-bit refusal: the tool gets an OverflowError, whose type()
    # the policy lets it take (only MemoryError's is withheld); raising it
    # again is the tool's own error, not a forged limit.
    "spoof-memory-error-class-from-type": (frozenset({"error"}), frozenset({"OverflowError"}), ""),
    # CPython 3.13 renamed re.error to re.PatternError: the same refusal,
    # naming the class by its new name.
    "libinit-re-error-init-on-class": (frozenset({"blocked"}), frozenset(), "needs a PatternError object"),
    # A C recursion (converting a result 100 000 levels deep, compiling an
    # expression 1 000 levels deep) exhausts the guest's 512 KiB wasm stack
    # before CPython's own depth checks fire: wasmtime traps the guest, and
    # the host reports the stack, part of the call's memory, as the limit.
    "result-deep-nesting": (frozenset({"limit"}), frozenset(), ""),
    "cat-res-deep-ast-compile": (frozenset({"limit"}), frozenset(), ""),
}


def _expected(attack: Attack) -> tuple[frozenset[str], frozenset[str], str]:
    return _ON_WASM.get(attack.id, (attack.expect, attack.error_types, attack.reason))


_ALL = [a for a in ATTACKS + CATALOGUE if a.applies_to == "both"]


@pytest.mark.parametrize("attack", _ALL, ids=[a.id for a in _ALL])
def test_attack_with_the_policy_is_contained(attack: Attack, canaries: Canaries) -> None:
    result = run(_job(attack, canaries), "wasm")
    statuses, error_types, reason = _expected(attack)
    assert result.status in statuses, f"{attack.id}: {result!r}"
    assert result.status != "ok"
    if result.status == "error" and error_types:
        assert result.error is not None and result.error.type in error_types, f"{attack.id}: {result!r}"
    if result.status == "blocked" and reason:
        assert result.error is not None and reason in result.error.message, f"{attack.id}: {result!r}"
    canaries.check(json.dumps(result.to_json(), ensure_ascii=False))


@pytest.mark.parametrize("attack", _ALL, ids=[a.id for a in _ALL])
def test_attack_without_the_policy_meets_the_wasm_walls(attack: Attack, canaries: Canaries) -> None:
    # Plain Python owns the guest's interpreter: whatever it answers, the
    # canaries (a host file, a host variable, a loopback listener, a
    # watched folder) stay out of its reach.
    # Short limits: a resource attack ends sooner, and containment does not depend on them.
    limits = {**attack.limits, "cpu": min(attack.limits.get("cpu", 1), 1), "wall": min(attack.limits.get("wall", 2), 2)}
    result = run(_job(dataclasses.replace(attack, policy="plain", limits=limits), canaries), "wasm")
    assert result.status != "unavailable", f"{attack.id}: {result!r}"
    canaries.check(json.dumps(result.to_json(), ensure_ascii=False))


def _escapes() -> list[dict]:
    if not ESCAPES.is_file():
        return []
    return [case for case in json.loads(ESCAPES.read_text(encoding="utf-8")) if isinstance(case, dict)]


@pytest.mark.parametrize("policy", ["restricted", "plain"])
def test_the_shared_escapes_are_contained(policy: str, canaries: Canaries) -> None:
    cases = _escapes()
    if not cases:
        pytest.skip(f"no shared escape catalogue at {ESCAPES}")
    for case in cases:
        code = canaries.render(str(case["code"]))
        # The catalogue's cases are module-level code: they run as the tool's
        # source is executed, before its entrypoint is called.
        job = Job(
            source=code + "\n\ndef run():\n    return None\n",
            entrypoint="run",
            limits=Limits(cpu=1, wall=2, memory=256, output=256),
            policy=policy,  # type: ignore[arg-type]
        )
        result = run(job, "wasm")
        # Contained, whatever the outcome: the catalogue's own verdicts
        # ("blocked") are checked case by case by its rewrite (catalogue.py,
        # above); raw, a case may run to its end harmlessly (an object that
        # would hang a host comparing it never leaves the guest).
        assert result.status != "unavailable", f"{case.get('id')}: {result!r}"
        canaries.check(json.dumps(result.to_json(), ensure_ascii=False))
    still = run(Job(source="def run():\n    return 1\n", entrypoint="run"), "wasm")
    assert (still.status, still.result) == ("ok", 1), still
