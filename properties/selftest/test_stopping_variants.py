"""The stopping variants and the two new properties' variants, property by property (the
route the pytest plugin and the self-test take, :func:`dnspec.running.runner.evaluate`):
each stopping variant fails the properties whose calls reach batches of one image, in that
regime only; each correct control passes ``process_state`` and ``fresh_noise``. The whole
verdicts (one divergence each, every route) are in properties/test_isolation.py."""

from __future__ import annotations

import pytest

from dnspec.checks.suite import BY_NAME, RunOptions
from dnspec.running.runner import evaluate

from .stopping_variants import BROKEN, CONTROLS, HANGING, REGIME, STOPPING

OPTIONS = RunOptions(seed=0, max_examples=10)


@pytest.mark.parametrize("name", STOPPING)
def test_a_stopping_variant_fails_in_its_regime_only(name):
    outcome = evaluate(BY_NAME["structure"], STOPPING[name], OPTIONS)
    assert outcome.status == "fail"
    failed = {regime for regime, status in outcome.regimes.items() if status == "fail"}
    assert failed == {REGIME}, outcome.regimes


@pytest.mark.parametrize("name", BROKEN)
def test_a_state_or_noise_variant_is_caught(name):
    impl, expected = BROKEN[name]
    for prop in expected:
        outcome = evaluate(BY_NAME[prop], impl, OPTIONS)
        assert outcome.status == "fail", (name, prop, outcome.message)


@pytest.mark.parametrize("prop", ["process_state", "fresh_noise", "determinism", "structure"])
@pytest.mark.parametrize("name", CONTROLS)
def test_a_correct_control_passes(name, prop):
    outcome = evaluate(BY_NAME[prop], CONTROLS[name], OPTIONS)
    assert outcome.status == "pass", (name, prop, outcome.message)


@pytest.mark.parametrize("name", HANGING)
def test_a_hang_sigalrm_cannot_stop_fails_with_the_case_it_hung_on(name):
    """The route of the pytest plugin and the self-test: the run's watchdog ends the call
    (a C deadlock, a loop that ignores SIGALRM) and the property fails with a hangs
    finding on a batch of two images."""
    from dataclasses import replace

    outcome = evaluate(BY_NAME["structure"], HANGING[name], replace(OPTIONS, time_limit_s=1))
    assert outcome.status == "fail"
    assert "did not stop when interrupted" in outcome.message + outcome.details, outcome.message
