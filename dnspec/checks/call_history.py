"""The ``call_history`` property: the same inputs under the same ``torch.manual_seed`` give
the same outputs whatever was called before.

``determinism`` compares two calls made back to back; a builder whose output depends on
how many calls came before, or on which, can pass it on most cases and fail it on a few,
so that Hypothesis cannot replay its failures. This property judges the history itself,
on a small fixed workload (:func:`workload`: :data:`CASES` cases of one shape, with
noise on, each with its own seed and values):

1. **fresh**: each case is called first, alone, in a process started for it from the
   worker (:func:`dnspec.calling.workers.in_child`: forked, or started as workers are
   where they are not forked), so nothing of this workload was called before it there;
   in ``--in-process`` (no worker), each case is called once here first, in order,
   which still catches generators and counters but not a cache filled by an earlier
   case;
2. **after other calls**: then :data:`ROUNDS` rounds through the cases, each call after
   ``torch.manual_seed(case.seed)``; every call must give exactly the fresh call's
   outputs (every tensor equal, NaN where NaN; the same dn_meta).

What it catches: a private ``torch.Generator`` (or numpy generator) seeded once at
import (each call continues its stream: the same seed gives another draw); a counter
(wrong on every k-th call, for every k up to ``CASES * ROUNDS``: the calls after the
fresh ones are consecutive); a cache keyed on the wrong thing (shape, id): the fresh
call of a case is its own, the later one is served another case's outputs.

Its cost: ``CASES`` processes and ``CASES * (ROUNDS + 1)`` calls (15) on cases of five
boxes, once per run (a few tenths of a second forked; seconds where each process is
spawned and imports torch).
"""

from __future__ import annotations

import functools

import torch

from dnspec.calling import workers
from dnspec.calling.call import call_implementation
from dnspec.checks.violations import fail
from dnspec.generation.cases import CdnCase, make_targets

CHECK = "call_history"  # the check id, and the signature of a failure Hypothesis could not replay
CASES = 3
ROUNDS = 4


def workload(seed: int, device: str = "cpu") -> list[CdnCase]:
    """:data:`CASES` cases of one shape (images of 3 and 2 boxes), noise on, each with
    its own seed and boxes, on ``device``."""
    return [
        CdnCase(
            targets=make_targets((3, 2), seed=seed + i, num_classes=7, device=device),
            num_classes=7,
            num_queries=11,
            num_denoising=12,
            label_noise_ratio=0.5,
            box_noise_scale=0.8,
            embed_dim=8,
            seed=seed + i,
            device=device,
        )
        for i in range(CASES)
    ]


def _call(impl, case):
    """The case's call, seeded with its seed; outputs moved to the CPU and detached."""
    return _to_cpu(call_implementation(impl, case))


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def differs(a, b, where: str = "outputs") -> str:
    """Where ``a`` and ``b`` differ (``'outputs[2]'``), or '' when they are the same:
    tensors of one dtype and shape with equal values (NaN equal to NaN), sequences and
    dicts element by element, anything else by ``==``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return where
        if a.dtype != b.dtype or a.shape != b.shape:
            return where
        if a.is_floating_point() or a.is_complex():
            same = (a == b) | (torch.isnan(a) & torch.isnan(b))
            return "" if bool(same.all()) else where
        return "" if torch.equal(a, b) else where
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return where
        return next((d for i, (x, y) in enumerate(zip(a, b, strict=True)) if (d := differs(x, y, f"{where}[{i}]"))), "")
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return where
        return next((d for k in a if (d := differs(a[k], b[k], f"{where}[{k!r}]"))), "")
    try:
        return "" if bool(a == b) else where
    except Exception:  # an object whose == does not give a truth value
        return where


def _fresh(impl, cases) -> list:
    """Each case's fresh outputs (see the module docstring, step 1)."""
    if workers.IN_WORKER:
        fresh = []
        for case in cases:
            try:
                fresh.append(workers.in_child(functools.partial(_call, impl, case)))
            except (workers.ChildDied, workers.WorkerError):
                break  # it raised or died there: called here, it raises or dies as a finding
        if len(fresh) == len(cases):
            return fresh
    return [_call(impl, case) for case in cases]


def check_call_history(impl, seed: int, device: str = "cpu"):
    """Every call of the workload after other calls gives exactly the outputs of the same
    case's fresh call (see the module docstring); returns what was judged."""
    cases = workload(seed, device)
    fresh = _fresh(impl, cases)
    made = 0
    for _ in range(ROUNDS):
        for case, expected in zip(cases, fresh, strict=True):
            got = _call(impl, case)
            made += 1
            where = differs(expected, got)
            if where:
                fail(
                    f"{getattr(impl, 'name', 'the implementation')}'s result depends on its call history: the same "
                    f"inputs under the same torch.manual_seed gave other {where} at call {made} of a sequence of calls "
                    "than on a fresh call (a generator seeded once at import, a cache keyed on the wrong thing, or a "
                    "call counter)",
                    CHECK,
                    case,
                )
    return f"{made} calls after others gave the fresh calls' outputs on {len(cases)} cases"
