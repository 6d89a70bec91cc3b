"""``dnspec bench``'s measurements in worker processes: an implementation that kills its
process (a segfault, an abort, ``os._exit``) while being measured is a clear error of that
SPEC on that workload, never a traceback or the end of the benchmark, and a thread or child
process it leaves running cannot keep ``dnspec bench`` alive.

Each workload is measured by :func:`dnspec.benchmarks.timing.measure` in a worker forked for
it (:func:`dnspec.calling.workers.run_tasks`; the implementations stay interleaved within
the workload, as the ratios to the reference need). When a workload's worker dies, each
SPEC is called once alone, in a worker of its own, on that workload; the SPECs whose worker
dies get an error row naming how (``killed by SIGSEGV``), and the workload is measured
again without them.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from dnspec.calling import workers


def measure_isolated(impls: list, workloads: list, *, specs: list[str], on_progress=None, **options) -> list:
    """:func:`dnspec.benchmarks.timing.measure` (same options), each workload in a worker
    process; ``on_progress(description, rounds)`` hears of each workload measured."""
    from dnspec.benchmarks import workloads as workload_defaults

    rounds = options.get("rounds", workload_defaults.DEFAULT_ROUNDS)
    on_progress = on_progress or (lambda description, n: None)
    workloads = list(workloads)

    measure = functools.partial(_measure, impls, workloads, specs, options)
    everyone = tuple(range(len(impls)))
    tasks = [(index, everyone) for index in range(len(workloads))]
    results = workers.run_tasks(
        tasks, measure, jobs=1, on_done=lambda task: on_progress(workloads[task[0]].short, rounds)
    )
    out: list = []
    for (index, _), result in zip(tasks, results, strict=True):
        if isinstance(result, workers.WorkerDied):
            result = _without_culprits(impls, specs, workloads[index], index, measure, options)
        out.extend(result)
    return out


def _measure(impls, workloads, specs, options, task):
    """A worker task: workload ``task[0]`` measured on the implementations ``task[1]``
    (module-level, its state as arguments: it pickles for any start method)."""
    from dnspec.benchmarks import timing

    index, chosen = task
    return timing.measure([impls[i] for i in chosen], [workloads[index]], specs=[specs[i] for i in chosen], **options)


def _probe(impls, workload, specs, options, i):
    """A worker task: implementation ``i`` called once alone on ``workload``."""
    from dnspec.benchmarks import timing

    return timing.measure(
        [impls[i]],
        [workload],
        specs=[specs[i]],
        **{**options, "rounds": 1, "blocks": 1, "memory": False, "warmup": 0, "min_sample_s": 0.0},
    )


def _without_culprits(impls, specs, workload, index, measure, options) -> list:
    """The workload's measurements when its worker died: each SPEC tried once alone; those
    that die get an error row, the others are measured again together."""
    from dnspec.benchmarks.results import Measurement

    probe = functools.partial(_probe, impls, workload, specs, options)
    probes = workers.run_tasks(list(range(len(impls))), probe, jobs=1)
    died = {i: p for i, p in enumerate(probes) if isinstance(p, workers.WorkerDied)}
    alive = tuple(i for i in range(len(impls)) if i not in died)
    again = workers.run_tasks([(index, alive)], measure, jobs=1)[0] if alive else []
    if isinstance(again, workers.WorkerDied):  # dies only together with another: blame them all
        died.update({i: again for i in alive})
        again = []
    rows = {m.spec: m for m in again}
    out = []
    for i, spec in enumerate(specs):
        if i in died:
            out.append(
                Measurement(
                    spec=spec,
                    label=getattr(impls[i], "label", spec),
                    workload=workload,
                    error=f"its process died: {died[i].detail}",
                )
            )
        else:
            out.append(rows.get(spec) or replace(Measurement(spec, spec, workload), error="not measured"))
    return out
