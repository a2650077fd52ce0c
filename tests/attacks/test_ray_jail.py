"""The jail holds on a Ray node with the policy off: the whole attack corpus
and the public catalogue, as ordinary Python (``policy="plain"``), through
the `ray` backend's actors on the two-node test cluster.

The policy-on corpus runs against `ray` in test_attacks.py (the `backend`
fixture); test_jail.py proves the same jail on this machine's own zygote.
Here every call goes through an actor, and after each the canaries must be
untouched: the secret file, the watched directory and the loopback listener
live in the cluster's own network namespace, next to Ray's ports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from toolcrib.sandbox import Job, Limits

from .catalogue import CATALOGUE
from .corpus import ATTACKS, HELPER_TOOL, Attack
from .jail_outcomes import attack_verdict
from .jailkit import JailCanaries

pytestmark = pytest.mark.ray

ALL_ATTACKS = ATTACKS + CATALOGUE


@pytest.fixture(scope="module")
def canaries(ray_cluster: Any) -> Iterator[JailCanaries]:
    made = JailCanaries.create("TOOLCRIB_RAY_JAIL_CANARY")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def on_ray(ray_cluster: Any) -> Iterator[Any]:
    from toolcrib.sandbox.ray_backend import RayBackend

    backend = RayBackend(ray_cluster.address, actors_per_node=1)
    backend.start()
    try:
        yield backend
    finally:
        backend.close()


def _job(attack: Attack, canaries: JailCanaries) -> Job:
    limits = Limits(cpu=1, wall=3, memory=256, output=256).override(**attack.limits)
    code = canaries.render(attack.code)
    if attack.mode == "snippet":
        return Job(source=HELPER_TOOL, entrypoint="apply", mode="snippet", snippet=code, limits=limits, policy="plain")
    return Job(source=code, entrypoint="run", limits=limits, policy="plain")


@pytest.mark.parametrize("attack", ALL_ATTACKS, ids=[a.id for a in ALL_ATTACKS])
def test_attack_is_contained_by_the_jail_on_a_ray_node(attack: Attack, canaries: JailCanaries, on_ray: Any) -> None:
    result = on_ray.run(_job(attack, canaries))
    assert result.status != "unavailable", f"{attack.id}: {result!r}"
    assert {"landlock", "seccomp", "netns"} <= set(result.layers), result.layers
    assert result.environment.get("ray_node"), result.environment
    problems = canaries.problems(json.dumps(result.to_json(), ensure_ascii=False))
    assert not problems, f"{attack.id}: {problems}; {result!r}"
    why = attack_verdict(attack.id, result.to_json())
    assert why is None, f"{attack.id}: {why}"
