"""Shrinking a hang (dnspec.running.shrinks.shrink_hang, issue 26 §2): the cases are drawn
in the run's own process, each try runs on a fresh worker under the watchdog, and the
smallest case that hung is called once more under the run's own limit before it is
reported; a builder that never hangs gives no hang, and ``--in-process`` (no watchdog)
shrinks none."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dnspec.calling import workers
from dnspec.calling.call import HANGS
from dnspec.checks.suite import BY_NAME, RunOptions
from dnspec.implementations.specs import load_implementation
from dnspec.running.shrinks import shrink_hang

FORKS = pytest.mark.skipif(not workers.can_fork("cpu"), reason="the tries fork worker processes (Linux)")
OPTIONS = RunOptions(seed=0, time_limit_s=1)
VARIANTS = Path(__file__).parent / "selftest" / "stopping_variants.py"
sleeping_on_six_boxes = load_implementation(f"{VARIANTS}:sleeping_on_six_boxes")  # as a SPEC: it travels to any worker


def _shrink(impl, options=OPTIONS):
    return shrink_hang(impl, BY_NAME["structure"], None, "common", options, max_examples=20, seed=0)


@FORKS
def test_a_hang_shrinks_to_a_smallest_case_that_hangs():
    """The builder sleeps on six boxes or more; the first such batch drawn has more (14,
    over five images): the shrink ends on a smaller batch that still hangs (six boxes on
    an idle machine; on a busy one a slow try can end the search a little earlier)."""
    found = _shrink(sleeping_on_six_boxes)
    assert found is not None and found.signature.kind == "hangs"
    assert 6 <= sum(found.case.counts) < 14, found.case.counts
    assert HANGS.hung[sleeping_on_six_boxes.name] is found.case  # hung in this run, on that case


@FORKS
def test_a_builder_that_never_hangs_gives_no_hang_and_in_process_shrinks_none():
    assert _shrink(load_implementation("reference")) is None
    assert _shrink(sleeping_on_six_boxes, replace(OPTIONS, in_process=True)) is None
