"""A metered copy of the reference: a SPEC for ``dnspec verify`` that calls
:func:`dnspec.contract.reference.get_contrastive_denoising_training_group` and counts its calls
and the time spent inside them, so a verify run can be split into the implementation's
time and dnspec's own (``benchmarks/suite_speed.py`` does that).

    DNSPEC_METER_OUT=meter.jsonl dnspec verify benchmarks/metered_reference.py:metered --profile ci

Every process that called it (verify itself, and any worker process verify starts)
appends one JSON line ``{"pid", "calls", "inside_s", "inside_cpu_s"}`` to the file named
by ``$DNSPEC_METER_OUT`` when it exits (nothing when unset); :func:`suite_speed.read_meter` adds them
up. ``inside_s`` is wall time (perf_counter), ``inside_cpu_s`` the calling thread's CPU
time (thread_time). A forked worker starts from zero, so nothing is counted twice.

It is an :class:`~dnspec.implementations.specs.Implementation` with the reference's own description
(accepts an injected noise draw, declares no advisory fixes), so verify runs on it
exactly the checks it runs on ``reference``.
"""

from __future__ import annotations

import atexit
import json
import os
import time

from dnspec.contract.reference import get_contrastive_denoising_training_group
from dnspec.implementations.specs import Implementation

METER = {"calls": 0, "inside_s": 0.0, "inside_cpu_s": 0.0}


def metered_call(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    **kwargs,
):
    """The reference, timed."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        return get_contrastive_denoising_training_group(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, **kwargs
        )
    finally:
        METER["inside_cpu_s"] += time.thread_time() - cpu
        METER["inside_s"] += time.perf_counter() - wall
        METER["calls"] += 1


metered = Implementation(
    name="metered-reference",
    fn=metered_call,
    accepts_noise=True,
    description="the reference with a meter on its calls (benchmarks/suite_speed.py)",
)


def _reset() -> None:
    METER.update(calls=0, inside_s=0.0, inside_cpu_s=0.0)


def _write_meter() -> None:
    path = os.environ.get("DNSPEC_METER_OUT")
    if path and METER["calls"]:
        line = json.dumps({"pid": os.getpid(), **METER}) + "\n"
        with open(path, "a") as out:  # one short append per process
            out.write(line)
        _reset()  # written once, whichever exit hook runs first


def _write_at_worker_exit() -> None:
    # a multiprocessing / concurrent.futures worker ends through multiprocessing's own exit
    # function, not atexit, and clears the finalizers it inherited when it starts
    from multiprocessing import util

    util.Finalize(None, _write_meter, exitpriority=100)


class _Forks:
    """What multiprocessing calls in each forked worker (after it cleared its finalizers)."""

    def __call__(self, _self) -> None:
        _reset()
        _write_at_worker_exit()


atexit.register(_write_meter)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset)  # a plain os.fork
try:
    from multiprocessing import util as _mp_util

    _FORKS = _Forks()
    _mp_util.register_after_fork(_FORKS, _FORKS)
    _write_at_worker_exit()  # a spawned worker imports this module itself
except Exception:  # pragma: no cover - no multiprocessing here
    pass
