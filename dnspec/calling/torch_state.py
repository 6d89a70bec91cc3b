"""The caller's torch process state around a call of the implementation: read, compared,
put back (the ``process_state`` property, :mod:`dnspec.checks.process_state`, judges it).

The state is what a builder could leave changed behind a training step's back: grad mode,
inference mode, the default dtype, autocast (enabled and its dtype, per device type), the
deterministic-algorithms setting, torch's intra-op thread count and anomaly detection.
:func:`snapshot` reads it (a handful of cheap getters, microseconds), :func:`differences`
names each change in words (``left grad mode disabled``), and :func:`restore` puts it back.
:mod:`dnspec.calling.call` snapshots around the implementation's own call, innermost
(inside any no_grad or autocast context dnspec opens, whose exit would hide a leak), puts
the state back so that a leak is not misread by the next check, and records what changed;
and :mod:`dnspec.checks.process_state` fails on any call of the case that leaked.
"""

from __future__ import annotations

import torch

AUTOCAST_DEVICES = ("cpu", "cuda")
_GUARDS: list = []  # inference-mode guards entered by restore


def _autocast(device: str) -> tuple[bool, object]:
    try:
        return torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)
    except (TypeError, RuntimeError, AttributeError):  # an older torch
        return (torch.is_autocast_enabled(), None) if device == "cuda" else (torch.is_autocast_cpu_enabled(), None)


def snapshot() -> tuple:
    """The process state, as a tuple of (name, value) pairs (comparable with ``==``)."""
    return (
        ("grad_mode", torch.is_grad_enabled()),
        ("inference_mode", torch.is_inference_mode_enabled()),
        ("default_dtype", torch.get_default_dtype()),
        *((f"autocast_{device}", _autocast(device)) for device in AUTOCAST_DEVICES),
        ("deterministic_algorithms", torch.are_deterministic_algorithms_enabled()),
        ("deterministic_warn_only", torch.is_deterministic_algorithms_warn_only_enabled()),
        ("intra_op_threads", torch.get_num_threads()),
        ("anomaly_detection", torch.is_anomaly_enabled()),
    )


def _on(value: bool) -> str:
    return "enabled" if value else "disabled"


def differences(before: tuple, after: tuple) -> list[tuple[str, str]]:
    """Each change between two snapshots: (name, what it says), e.g.
    ``("grad_mode", "left grad mode disabled")``."""
    found = []
    for (name, old), (_, new) in zip(before, after, strict=False):
        if old == new:
            continue
        if name in ("grad_mode", "inference_mode", "deterministic_algorithms", "anomaly_detection"):
            text = f"left {name.replace('_', ' ')} {_on(new)}"
        elif name == "deterministic_warn_only":
            text = f"left deterministic algorithms' warn_only {_on(new)}"
        elif name.startswith("autocast_"):
            device = name.split("_", 1)[1]
            text = (
                f"left autocast on {device} {_on(new[0])}"
                if old[0] != new[0]
                else f"left the autocast dtype on {device} {str(new[1]).replace('torch.', '')} (was {str(old[1]).replace('torch.', '')})"
            )
        elif name == "default_dtype":
            text = f"left the default dtype {str(new).replace('torch.', '')} (was {str(old).replace('torch.', '')})"
        else:
            text = f"left torch's intra-op threads at {new} (was {old})"
        found.append((name, text))
    return found


def restore(state: tuple) -> None:
    """Put the process state back to ``state`` (a :func:`snapshot`)."""
    values = dict(state)
    if torch.is_inference_mode_enabled() != values["inference_mode"]:
        guard = torch.inference_mode(values["inference_mode"])
        guard.__enter__()
        _GUARDS.append(guard)  # kept: a guard collected would switch the mode back
    torch.set_grad_enabled(values["grad_mode"])
    torch.set_default_dtype(values["default_dtype"])
    for device in AUTOCAST_DEVICES:
        enabled, dtype = values[f"autocast_{device}"]
        try:
            torch.set_autocast_enabled(device, enabled)
            if dtype is not None:
                torch.set_autocast_dtype(device, dtype)
        except (TypeError, RuntimeError, AttributeError):
            pass
    torch.use_deterministic_algorithms(values["deterministic_algorithms"], warn_only=values["deterministic_warn_only"])
    if torch.get_num_threads() != values["intra_op_threads"]:
        torch.set_num_threads(values["intra_op_threads"])
    torch.set_anomaly_enabled(values["anomaly_detection"])


def rng_state() -> tuple:
    """The global RNG states a builder can draw from: the CPU's, and CUDA's current
    device's once CUDA is initialized (reading it never initializes CUDA)."""
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.append(torch.cuda.get_rng_state())
    return tuple(states)


def same_rng_state(a: tuple | None, b: tuple | None) -> bool:
    return (
        a is not None
        and b is not None
        and len(a) == len(b)
        and all(torch.equal(x, y) for x, y in zip(a, b, strict=False))
    )
