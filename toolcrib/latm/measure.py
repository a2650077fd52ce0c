"""What the made tool costs on its examples, and the limits (and policy)
`make` declares so that the tool user's calls of the same kind finish.

Every run of `make`'s stages asks the backend what it used (`Job.measure`:
CPU seconds and peak memory growth in `Result.environment`, where the
backend can say; the wall time is always there). The wrap stage runs each
use case that asks one of the task's examples on its own, so those runs
are the tool's cost per example.

- A run that hits the CPU, wall or memory limit under the limits `make`
  runs with (the defaults, when no ``--limit`` was given) is run once more
  under the *measuring ceiling*: those limits times `HEADROOM`, at most the
  registry's maxima. If it finishes there, the stage goes on, and its cost
  is what is declared from.
- If it still does not finish under the restricted policy and the backend
  permits the plain policy (its whole jail is in force: `health()`
  ``plain_policy``), it is run under plain at the ceiling; if it finishes
  there, `make` switches to plain for the rest of the run and registers the
  version under it (`switch_to_plain`). The jail, not the policy, is the
  boundary: a plain call runs in the same jailed, limited child, so the
  switch gives up a courtesy layer, not containment; and `make` switches
  only when an example cannot finish otherwise, never to save time. Where
  plain is not permitted, the stage fails as before and says so.
- After the wrap, the heaviest example's CPU, wall and memory times
  `HEADROOM` (at least the limits make ran with, at most the registry's
  maxima; the wall at least the CPU times the default wall/CPU ratio) are
  the version's declared limits, when any of them is above what make ran
  with; else nothing is declared (the defaults, as before). With
  ``--limit`` given, those limits are kept as given and nothing escalates;
  the measurement is still reported.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from ..sandbox import Limits, Result

__all__ = ["HEADROOM", "MEASURED", "ExampleCost", "Measurement", "ceiling", "cost_of", "declare"]

# Declared limit = the heaviest example's use times this (the tool user's
# questions are of the same kind, not the same size); also how far above
# the base limits a stage's run may go to be measured.
HEADROOM = 10
# The limits a run may be measured and re-run for: the ones a bigger input uses up.
MEASURED = ("cpu", "wall", "memory")


class ExampleCost(BaseModel):
    """One example's run of the made tool (a wrap-stage use case)."""

    example: int = Field(description="the task example's number (1-based)")
    policy: str = Field(description="the policy it ran under")
    cpu_seconds: float = Field(description="CPU seconds (the wall time where the backend does not say)")
    wall_seconds: float
    memory_mib: float | None = Field(None, description="peak memory above the start, where the backend says")


class Measurement(BaseModel):
    """What `make` measured, and what it declared from it (`make --json`: ``measured``)."""

    examples: list[ExampleCost] = Field(default_factory=list)
    ran_with: dict[str, float] = Field(description="the limits the stages ran with")
    limits: dict[str, float] | None = Field(
        None, description="the limits declared for the version (None: the defaults suffice)"
    )
    policy: str = Field(description="the policy the version was registered under")
    notes: list[str] = Field(default_factory=list, description="each escalation and decision, one line")


def cost_of(result: Result) -> tuple[float, float, float | None]:
    """(CPU seconds, wall seconds, memory MiB or None) of a run, from its
    Result: the backend's measurement where it gave one, else the wall time
    for the CPU (a bound: the sandboxes run the tool on one thread)."""
    wall = result.duration_ms / 1000
    env = result.environment

    def number(key: str) -> float | None:
        try:
            value = float(env[key])
        except (KeyError, ValueError):
            return None
        return value if math.isfinite(value) and value >= 0 else None

    cpu = number("cpu_seconds")
    return (cpu if cpu is not None else wall), wall, number("memory_mib")


def ceiling(base: Limits, maxima: Limits) -> Limits:
    """The limits a run that hit `base`'s CPU, wall or memory limit is run again under."""
    return base.override(
        cpu=min(maxima.cpu, base.cpu * HEADROOM),
        wall=min(maxima.wall, base.wall * HEADROOM),
        memory=min(maxima.memory, base.memory * HEADROOM),
    )


def declare(costs: list[ExampleCost], base: Limits, maxima: Limits) -> Limits | None:
    """The limits to register from the examples' costs: `HEADROOM` times the
    heaviest, at least `base`, at most `maxima`; None when `base` suffices."""
    if not costs:
        return None
    cpu_need = max(c.cpu_seconds for c in costs) * HEADROOM
    wall_need = max(c.wall_seconds for c in costs) * HEADROOM
    memories = [c.memory_mib for c in costs if c.memory_mib is not None]
    memory_need = max(memories) * HEADROOM if memories else 0.0
    cpu = min(maxima.cpu, max(base.cpu, float(math.ceil(cpu_need))))
    # The wall clock runs at least as long as the CPU, with the defaults' slack for a loaded machine.
    ratio = Limits().wall / Limits().cpu
    wall = min(maxima.wall, max(base.wall, float(math.ceil(wall_need)), float(math.ceil(cpu * ratio))))
    memory = min(maxima.memory, max(base.memory, math.ceil(memory_need)))
    if (cpu, wall, memory) == (base.cpu, base.wall, base.memory):
        return None
    return base.override(cpu=cpu, wall=wall, memory=memory)
