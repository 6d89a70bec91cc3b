"""The two properties a builder can break behind one call's back, one test per input
regime, for every implementation given by --impl: ``process_state`` (the caller's torch
state is what it was after each call) and ``fresh_noise`` (consecutive calls draw fresh
noise; no reseeding, no replayed noise). The checks live in dnspec.checks.process_state
and dnspec.checks.fresh_noise; call_history in dnspec.checks.call_history."""

from dnspec.pytest_plugin import check_property


def test_process_state_is_left_as_found(impl, options, regime):
    check_property("process_state", impl, options, regime=regime)


def test_consecutive_calls_draw_fresh_noise(impl, options, regime):
    check_property("fresh_noise", impl, options, regime=regime)


def test_the_same_call_gives_the_same_result_whatever_came_before(impl, options):
    """call_history: a fixed workload (dnspec.checks.call_history), one test per --impl."""
    check_property("call_history", impl, options)
