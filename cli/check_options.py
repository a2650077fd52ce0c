"""The options `verify` shares with the checks (--fuzz, --seed, --budget,
--mutants), apart from `checks.py` so that `cli/run.py`, which also holds
`toolcrib call`, imports nothing of the checks until `verify` runs."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["MAX_FUZZ_OPTION", "seed_option"]

MAX_FUZZ_OPTION = 10_000


def seed_option(fn: Any) -> Any:
    fn = click.option(
        "--mutants",
        is_flag=True,
        help="Also mutation-test: run the tests against small changes to the code and report the score "
        "(killed of those that ran) and the surviving changes as diffs.",
    )(fn)
    fn = click.option(
        "--budget",
        type=click.FloatRange(min=0.1, max=24 * 3600),
        default=None,
        metavar="SECONDS",
        help="Time budget of the checks (generating, running, shrinking). Default: 60.",
    )(fn)
    fn = click.option(
        "--seed",
        type=click.IntRange(min=0, max=2**32 - 1),
        default=0,
        show_default=True,
        help="Seed of the generated inputs: the same seed, the same inputs.",
    )(fn)
    return click.option(
        "--fuzz",
        "fuzz_n",
        type=click.IntRange(min=0, max=MAX_FUZZ_OPTION),
        default=None,
        metavar="N",
        help="Also run N argument sets generated from the input schema (needs toolcrib[fuzz]); "
        "default: the registry's setting (toolcrib checks --fuzz N), else none.",
    )(fn)
