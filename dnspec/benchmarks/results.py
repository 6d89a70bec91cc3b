"""What a benchmark run found, as data and as a file: one :class:`Measurement` per
implementation and workload, the paired ratio statistic (:func:`ratio_stat`: an
implementation's time over the reference's, round by round, medians over blocks, a robust
standard error), and a whole run's :class:`BenchResult`, written and read back as JSON
(format ``dnspec-bench/1``; :func:`load_result` says in one line why a file is not one).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
from dataclasses import dataclass, field

import torch

from dnspec.benchmarks.workloads import DEFAULT_MIN_SAMPLE_S, BenchError, Workload

FORMAT = "dnspec-bench/1"

# the least standard error a ratio is believed to have
SE_FLOOR = 0.005
_MAD_TO_SE = 1.2533 * 1.4826


@dataclass
class Measurement:
    """One implementation on one workload: per-call seconds of each round (None where
    that round was not measured), the calls per sample, memory, or the error it raised."""

    spec: str
    label: str
    workload: Workload
    samples: list = field(default_factory=list)
    blocks: list = field(default_factory=list)
    calls_per_sample: int = 1
    peak_bytes: int | None = None
    output_bytes: int | None = None
    memory_method: str = ""
    error: str | None = None
    note: str = ""

    @property
    def times(self) -> list[float]:
        return [t for t in self.samples if t is not None]

    @property
    def median_s(self) -> float | None:
        times = self.times
        return statistics.median(times) if times else None

    def spread(self) -> float | None:
        """Relative interquartile range of the samples (how noisy absolute times were)."""
        times = self.times
        if len(times) < 4:
            return None
        q = statistics.quantiles(times, n=4)
        return (q[2] - q[0]) / q[1]

    @property
    def images_per_s(self) -> float | None:
        m = self.median_s
        return self.workload.batch_size / m if m else None

    @property
    def dn_queries_per_s(self) -> float | None:
        m = self.median_s
        return self.workload.batch_size * self.workload.dn_queries / m if m else None

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "label": self.label,
            "workload": self.workload.to_dict(),
            "workload_key": self.workload.key,
            "samples_s": self.samples,
            "blocks": self.blocks,
            "calls_per_sample": self.calls_per_sample,
            "median_s": self.median_s,
            "images_per_s": self.images_per_s,
            "dn_queries_per_s": self.dn_queries_per_s,
            "peak_bytes": self.peak_bytes,
            "output_bytes": self.output_bytes,
            "memory_method": self.memory_method,
            "error": self.error,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        return cls(
            spec=data["spec"],
            label=data.get("label", data["spec"]),
            workload=Workload.from_dict(data["workload"]),
            samples=list(data.get("samples_s", [])),
            blocks=list(data.get("blocks", [])),
            calls_per_sample=data.get("calls_per_sample", 1),
            peak_bytes=data.get("peak_bytes"),
            output_bytes=data.get("output_bytes"),
            memory_method=data.get("memory_method", ""),
            error=data.get("error"),
            note=data.get("note", ""),
        )


@dataclass(frozen=True)
class RatioStat:
    """Median over rounds of log(t_impl / t_ref), its robust standard error, and n."""

    log_ratio: float
    se: float
    n: int
    blocks: int = 1

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        return math.exp(self.log_ratio - z * self.se), math.exp(self.log_ratio + z * self.se)

    def to_dict(self) -> dict:
        low, high = self.interval()
        return {
            "ratio": self.ratio,
            "log_ratio": self.log_ratio,
            "se": self.se,
            "n": self.n,
            "blocks": self.blocks,
            "ci95": [low, high],
        }

    @classmethod
    def from_dict(cls, data: dict) -> RatioStat:
        return cls(log_ratio=data["log_ratio"], se=data["se"], n=data["n"], blocks=data.get("blocks", 1))


def ratio_stat(
    samples: list, reference_samples: list, blocks: list | None = None, se_floor: float = SE_FLOOR
) -> RatioStat | None:
    """The paired statistic of two interleaved sample lists (same rounds, same blocks).

    Per block, the median of the rounds' log(t / t_ref); the estimate is the median of
    the block medians (a block that started in a bad state moves it little), and its
    standard error comes from their spread: 1.2533 * 1.4826 * MAD / sqrt(blocks) from
    three blocks on, stdev / sqrt(2) for two. Each block has fresh inputs and
    allocations, so this spread includes what one block's memory layout favours, which
    the rounds within a block cannot see. Never less than the within-run error of the
    median over all rounds (the same formula on the rounds), nor ``se_floor``. With one
    block: the median over rounds and that within-run error.
    """
    blocks = blocks if blocks and len(blocks) == len(samples) else [0] * len(samples)
    by_block: dict[int, list[float]] = {}
    for a, b, block in zip(samples, reference_samples, blocks, strict=False):
        if a and b:
            by_block.setdefault(block, []).append(math.log(a / b))
    logs = [x for values in by_block.values() for x in values]
    if not logs:
        return None
    se = max(_robust_se(logs), se_floor)
    if len(by_block) == 1:
        return RatioStat(log_ratio=statistics.median(logs), se=se, n=len(logs), blocks=1)
    medians = [statistics.median(values) for values in by_block.values()]
    between = statistics.stdev(medians) / math.sqrt(2) if len(medians) == 2 else _robust_se(medians)
    return RatioStat(log_ratio=statistics.median(medians), se=max(se, between), n=len(logs), blocks=len(medians))


def _robust_se(values: list[float]) -> float:
    """Standard error of the median of ``values`` from their median absolute deviation."""
    centre = statistics.median(values)
    mad = statistics.median(abs(x - centre) for x in values)
    return _MAD_TO_SE * mad / math.sqrt(len(values))


@dataclass
class BenchResult:
    """A whole run: settings, environment, and every measurement."""

    measurements: list[Measurement]
    rounds: int
    threads: int
    min_sample_s: float
    reference: str = "reference"
    command: str = ""
    environment: dict = field(default_factory=dict)
    kind: str = "bench"  # or "scaling"
    seconds: float = 0.0

    def specs(self) -> list[str]:
        out: list[str] = []
        for m in self.measurements:
            if m.spec not in out:
                out.append(m.spec)
        return out

    def workloads(self) -> list[Workload]:
        out: list[Workload] = []
        for m in self.measurements:
            if m.workload not in out:
                out.append(m.workload)
        return out

    def get(self, spec: str, workload: Workload) -> Measurement | None:
        for m in self.measurements:
            if m.spec == spec and m.workload == workload:
                return m
        return None

    def ratio(self, spec: str, workload: Workload) -> RatioStat | None:
        m, ref = self.get(spec, workload), self.get(self.reference, workload)
        if m is None or ref is None or m.error or ref.error:
            return None
        return ratio_stat(m.samples, ref.samples, m.blocks)

    def to_dict(self) -> dict:
        ratios = {}
        for spec in self.specs():
            for w in self.workloads():
                stat = self.ratio(spec, w)
                if stat is not None:
                    ratios.setdefault(spec, {})[w.key] = stat.to_dict()
        return {
            "format": FORMAT,
            "kind": self.kind,
            "command": self.command,
            "environment": self.environment,
            "reference": self.reference,
            "rounds": self.rounds,
            "threads": self.threads,
            "min_sample_s": self.min_sample_s,
            "seconds": round(self.seconds, 2),
            "specs": self.specs(),
            "workloads": [w.to_dict() for w in self.workloads()],
            "measurements": [m.to_dict() for m in self.measurements],
            "ratios_to_reference": ratios,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BenchResult:
        if data.get("format") != FORMAT:
            raise BenchError(f"not a dnspec bench file (format {data.get('format')!r}, expected {FORMAT!r})")
        return cls(
            measurements=[Measurement.from_dict(m) for m in data["measurements"]],
            rounds=data["rounds"],
            threads=data.get("threads", 0),
            min_sample_s=data.get("min_sample_s", DEFAULT_MIN_SAMPLE_S),
            reference=data.get("reference", "reference"),
            command=data.get("command", ""),
            environment=data.get("environment", {}),
            kind=data.get("kind", "bench"),
            seconds=data.get("seconds", 0.0),
        )

    def write_json(self, path: str) -> None:
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=1)
            handle.write("\n")


def load_result(path: str) -> BenchResult:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not JSON: {exc}") from exc
    try:
        return BenchResult.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise BenchError(f"{path}: not a dnspec bench file (missing {exc})") from exc
    except BenchError as exc:
        raise BenchError(f"{path}: {exc}") from exc


def environment(threads: int) -> dict:
    from dnspec import __version__

    env = {
        "dnspec": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "",
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
    }
    if torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError):
        env["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return env
