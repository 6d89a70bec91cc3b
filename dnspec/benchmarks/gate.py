"""The regression gate: is an implementation slower than in a baseline, relative to the
reference timed in the same rounds?

Per implementation and workload, slowdown = exp(m_now - m_base), the ratio now over the
ratio in the baseline. It is flagged ('slower', exit 1) when it exceeds
``1 + max_slowdown`` **and** is more than z standard errors above no change, with
se = sqrt(se_now^2 + se_base^2 + run_sd^2) (run_sd: see below) and z the ``1 - 0.01 / K``
normal quantile (K comparisons, Bonferroni). The first condition is the threshold's
meaning; the second keeps false alarms at 1% per run even where the noise is not small
(then the effective threshold becomes z * se); a slowdown above the threshold that fails
it is 'inconclusive' (exit 0, a warning), and a comparison whose se exceeds a quarter of
the threshold is marked noisy. Where an estimate lies within z standard errors of the
threshold and more rounds now could move it out, :func:`settle_gate` measures that
workload again (up to a time budget) rather than leave the verdict to chance. The
reference is the yardstick and is not gated (its absolute drift is printed).

Between runs: a run's own standard error comes from its blocks, all in one process.
Between processes the ratio can also move as a whole (which cache sets the buffers land
in, which core, what else runs): on this repository's 2 shared cores the same code read
fast at 0.48x the reference at batch 64 in some processes and 0.58x in others, a log
difference of 0.17, while each run's se was 0.02. No number of rounds in the current run
shrinks that, so a baseline written from several runs (``dnspec bench --write-baseline F
--baseline-runs K``, each run its own process: :func:`merge_runs`) records the spread of
its runs' log ratios, ``run_sd``, and the gate adds it to the standard error. A workload
whose ratio is bimodal then gates only slowdowns beyond its own spread between runs (with
run_sd 0.08 and z 2.9, about 1.27x), instead of failing one run in two.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from dnspec.benchmarks.results import BenchResult, Measurement, RatioStat
from dnspec.benchmarks.timing import CLOCKS
from dnspec.benchmarks.workloads import BenchError, Workload, synchronize

# family-wise false-alarm level of one gate run
GATE_ALPHA = 0.01
DEFAULT_GATE_BUDGET_S = 60.0  # at most this long measuring more rounds for unclear gate rows
MIN_GATE_ROUNDS = 8
DEFAULT_BASELINE_RUNS = 5


@dataclass(frozen=True)
class GateRow:
    spec: str
    workload: Workload
    baseline: RatioStat | None
    current: RatioStat | None
    threshold: float  # max slowdown as a fraction, e.g. 0.15
    z: float
    note: str = ""
    run_sd: float = 0.0  # the baseline's spread of the log ratio between runs (processes)

    @property
    def slowdown(self) -> float | None:
        """Current ratio over baseline ratio (1.0: unchanged; 1.3: 30% slower)."""
        if self.baseline is None or self.current is None:
            return None
        return math.exp(self.current.log_ratio - self.baseline.log_ratio)

    @property
    def se(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return math.sqrt(self.current.se**2 + self.baseline.se**2 + self.run_sd**2)

    @property
    def significant(self) -> bool:
        """The slowdown is more than ``z`` standard errors above none."""
        return self.slowdown is not None and math.log(self.slowdown) > self.z * self.se

    @property
    def noisy(self) -> bool:
        """The comparison's own noise is not well under the threshold (se > a quarter of it)."""
        return self.se is not None and self.se > math.log1p(self.threshold) / 4

    @property
    def clear(self) -> bool:
        """The estimate is more than ``z`` standard errors away from the threshold, on
        either side: more rounds would not be expected to change the verdict."""
        if self.slowdown is None:
            return True
        return abs(math.log(self.slowdown) - math.log1p(self.threshold)) > self.z * self.se

    @property
    def settleable(self) -> bool:
        """More rounds now could make an unclear verdict clear: the current run's own error,
        the part more rounds shrink, is at least half the part they cannot (the
        baseline's own and the spread between runs); below that, rounds to the budget
        would shrink the total by under a tenth."""
        if self.slowdown is None or self.clear:
            return False
        return self.current.se >= math.hypot(self.baseline.se, self.run_sd) / 2

    @property
    def verdict(self) -> str:
        """'slower' (flagged: the estimated slowdown is above the threshold and
        significant), 'inconclusive' (above the threshold, but within z standard errors
        of no change), 'ok', or 'not compared'."""
        if self.slowdown is None:
            return "not compared"
        if self.slowdown > 1 + self.threshold:
            return "slower" if self.significant else "inconclusive"
        return "ok"

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "workload_key": self.workload.key,
            "verdict": self.verdict,
            "note": self.note,
            "slowdown": self.slowdown,
            "se": self.se,
            "significant": self.significant,
            "noisy": self.noisy,
            "max_slowdown": self.threshold,
            "z": self.z,
            "run_sd": self.run_sd,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "current": self.current.to_dict() if self.current else None,
        }


def reference_drift(current: BenchResult, baseline: BenchResult) -> float | None:
    """Geometric mean over shared workloads of the reference's median time now over its
    median in the baseline: the yardstick itself, in absolute time (informative only:
    machines and load differ, which is why the gate uses ratios)."""
    logs = []
    for w in current.workloads():
        now, then = current.get(current.reference, w), baseline.get(baseline.reference, w)
        if now and then and now.median_s and then.median_s:
            logs.append(math.log(now.median_s / then.median_s))
    return math.exp(statistics.fmean(logs)) if logs else None


def parse_slowdown(text: str) -> float:
    """'15%' or '0.15' -> 0.15; '15' is read as percent too."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise BenchError(
            f"--max-slowdown {text!r}: expected a percentage such as 15% (or a fraction such as 0.15)"
        ) from None
    if not raw.endswith("%") and value >= 1:
        value /= 100
    if not (0 < value < 10):
        raise BenchError(f"--max-slowdown {text!r}: must be above 0%")
    return value


def gate_z(comparisons: int, alpha: float = GATE_ALPHA) -> float:
    from scipy.stats import norm

    return float(norm.isf(alpha / max(1, comparisons)))


def gate(current: BenchResult, baseline: BenchResult, max_slowdown: float, alpha: float = GATE_ALPHA) -> list[GateRow]:
    """Compare every non-reference implementation measured now with its baseline ratio,
    per workload present in both."""
    pairs = []
    for spec in current.specs():
        if spec == current.reference:
            continue
        for w in current.workloads():
            pairs.append((spec, w, baseline.ratio(spec, w), current.ratio(spec, w)))
    comparable = sum(1 for _, _, b, c in pairs if b is not None and c is not None)
    z = gate_z(comparable, alpha)
    rows = []
    for spec, w, base, now in pairs:
        note = ""
        if base is None:
            note = "no baseline for this implementation and workload"
        elif now is None:
            m = current.get(spec, w)
            note = f"not measured: {m.error}" if m is not None and m.error else "not measured"
        run_sd = baseline.environment.get("run_sd", {}).get(spec, {}).get(w.key, 0.0)
        rows.append(
            GateRow(
                spec=spec, workload=w, baseline=base, current=now, threshold=max_slowdown, z=z, note=note, run_sd=run_sd
            )
        )
    return rows


def settle_gate(
    result: BenchResult,
    baseline: BenchResult,
    max_slowdown: float,
    remeasure: Callable[[list[Workload]], list[Measurement]],
    budget_s: float = DEFAULT_GATE_BUDGET_S,
    alpha: float = GATE_ALPHA,
) -> list[GateRow]:
    """The gate, with more rounds where the machine was too noisy for a clear verdict.

    While some comparison is not :attr:`GateRow.clear` (its estimate lies within ``z``
    standard errors of the threshold) but :attr:`GateRow.settleable` (rounds could still
    clear it) and another pass fits in ``budget_s`` seconds,
    ``remeasure`` times those workloads again (a fresh :func:`measure` of the same
    implementations, same rounds and blocks) and the new rounds join ``result`` as
    further blocks. A quiet machine settles in the first pass and pays nothing; a noisy
    one buys the rounds it needs, up to the budget; a row still unclear then keeps its
    verdict and its "noisy" note. Stopping when the interval clears the threshold errs
    little: a row whose true slowdown is well above the threshold stops on the wrong
    side only if its estimate falls more than z standard errors below it.
    ``result.environment['extra_rounds']`` records, per workload, the rounds added."""
    started = time.perf_counter()
    rows = gate(result, baseline, max_slowdown, alpha)
    last_pass = 0.0
    extra = result.environment.setdefault("extra_rounds", {})
    while True:
        pending = [w for w in result.workloads() if any(r.workload == w and r.settleable for r in rows)]
        elapsed = time.perf_counter() - started
        if not pending or elapsed + last_pass >= budget_s:
            return rows
        pass_start = time.perf_counter()
        for new in remeasure(pending):
            old = result.get(new.spec, new.workload)
            if old is None:
                result.measurements.append(new)
                continue
            offset = max(old.blocks, default=-1) + 1
            old.samples += new.samples
            old.blocks += [b + offset for b in new.blocks]
            old.error = old.error or new.error
        for w in pending:
            extra[w.key] = extra.get(w.key, 0) + result.rounds
        last_pass = time.perf_counter() - pass_start
        rows = gate(result, baseline, max_slowdown, alpha)


# --- baselines from several runs ---------------------------------------------------------------


def merge_runs(results: list[BenchResult]) -> BenchResult:
    """Several runs of one bench (each its own process) as one baseline: every run's
    samples, its blocks numbered apart (so a ratio's standard error sees the runs'
    spread), and ``environment['run_sd']``: per implementation and workload, the standard
    deviation of the runs' log ratios, the part of a later run's error that none of its
    own rounds remove (see the module docstring)."""
    if not results:
        raise BenchError("no runs to merge into a baseline")
    first = results[0]
    width = 1 + max((b for r in results for m in r.measurements for b in m.blocks), default=0)
    measurements = []
    for m0 in first.measurements:
        samples, blocks, errors = [], [], []
        for k, run in enumerate(results):
            m = run.get(m0.spec, m0.workload)
            if m is None:
                continue
            errors.append(m.error)
            samples += m.samples
            blocks += [k * width + b for b in (m.blocks or [0] * len(m.samples))]
        measurements.append(replace(m0, samples=samples, blocks=blocks, error=next((e for e in errors if e), None)))
    run_sd: dict[str, dict[str, float]] = {}
    for spec in first.specs():
        if spec == first.reference:
            continue
        for w in first.workloads():
            logs = [stat.log_ratio for stat in (run.ratio(spec, w) for run in results) if stat is not None]
            if len(logs) > 1:
                run_sd.setdefault(spec, {})[w.key] = statistics.stdev(logs)
    environment = dict(first.environment, runs=len(results), run_sd=run_sd)
    return replace(first, measurements=measurements, environment=environment, seconds=sum(r.seconds for r in results))


# --- a deliberately slowed copy (for testing the gate, and for calibrating it yourself) ------


def slowed(fn: Callable, factor: float, clock: str = "cpu", device: str | None = None) -> Callable:
    """``fn``, made ``factor`` times slower on ``clock``: each call is timed, then the
    caller spins for (factor - 1) times that call's own duration (after synchronising
    ``device``). With the cpu clock that is ``factor`` times the CPU work of the same call;
    a consistent slowdown under the same load, like a real regression, where a fixed
    sleep would be a different fraction at every size (and costs no CPU)."""
    now = CLOCKS[clock]

    def slow(*args, **kwargs):
        start = now()
        out = fn(*args, **kwargs)
        if device is not None:
            synchronize(device)
        deadline = start + factor * (now() - start)
        while now() < deadline:
            pass
        return out

    slow.__name__ = f"slowed_{getattr(fn, '__name__', 'fn')}"
    return slow
