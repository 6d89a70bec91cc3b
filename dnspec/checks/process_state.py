"""The ``process_state`` property: after each call, the caller's torch process state is
what it was before it (grad mode, inference mode, the default dtype, autocast, the
deterministic-algorithms setting, intra-op threads, anomaly detection).

:mod:`dnspec.calling.call` snapshots that state around the implementation's own call
(:mod:`dnspec.calling.torch_state`), puts it back and records what changed;
:func:`check_process_state` fails on any call of the case that leaked, once per kind of
change (the check id names it: ``process_state.grad_mode``).
"""

from __future__ import annotations

from dnspec.checks.violations import PropertyViolation, raise_all


def check_process_state(trial) -> None:
    """Every call made on this case (the main call and the call under autograd, which
    every other check shares, and any other call the checks made on it) left the caller's
    process state as it found it; one failure per kind of change."""
    from dnspec.calling.trial import CallKey

    trial.outputs()
    trial.outputs(CallKey(grad=True))
    seen: dict[str, str] = {}
    for name, text in trial.state_leaks:
        seen.setdefault(name, text)
    name_of = getattr(trial.impl, "name", "the implementation")
    raise_all([PropertyViolation(f"{name_of} {text}", f"process_state.{name}") for name, text in seen.items()])
