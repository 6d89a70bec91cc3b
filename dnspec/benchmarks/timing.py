"""Measuring CDN builders: workloads, interleaved timing, ratios to the reference, peak
memory and result files (the regression gate on those ratios is :mod:`dnspec.benchmarks.gate`). ``dnspec bench`` and ``pytest benchmarks``
both measure through this module, so they time the same call.

What one call is
  A :class:`Workload` is one call's shape: batch size, max boxes per image (image 0 has
  exactly that many, the others a seeded uniform count in [0, max], empty images
  included), num_denoising, num_queries (300), num_classes (80), embed_dim (256, RT-DETR's
  hidden size), device and dtype. Every call gets freshly cloned targets, prepared
  outside the timed region, and the upstream signature with its defaults (so dnspec's
  builders validate their inputs, as users get them), with autograd on as in training
  (the class embedding's weight requires grad). Transformers ports are timed natively
  (:func:`timed_callable`). CUDA and MPS work is synchronised before the clock starts
  and before it stops. Warm-up calls (the first calls cost 3x to 100x a steady one) are
  never timed.

The clock
  On a CPU with one torch thread (the default there), the clock is the calling thread's
  CPU time (``time.thread_time``): what the call costs a core, without the time spent
  waiting for a core that other processes hold. On a shared 2-core machine, wall-clock
  samples of the same call spread over +-50% and more; CPU-time samples over a few
  percent. (Two torch threads on a loaded machine are worse still: an op waits for
  whichever of its threads was descheduled.) ``clock="wall"`` is the choice for
  multi-threaded or GPU runs. The allocator is held warm too (:func:`steady_allocator`):
  left to glibc's defaults the same call costs 1x or 2.5x depending on whether malloc
  hands it fresh pages, which depends on what ran before it.

Interleaving and blocks
  Each round times every implementation once, in an order rotated by one each round
  (A B C, B C A, ...), so drifts of the machine hit all alike. A sample is ``k``
  back-to-back calls divided by ``k``, the same ``k`` for every implementation of a
  workload (sized so the fastest one's sample lasts ``min_sample_s``). The rounds are
  split into blocks, each with freshly built inputs and embeddings and one discarded
  interleaved round: what the memory layout of one block happens to favour (a bias of
  a few percent that the rounds within a block share) varies between blocks, and the
  spread between blocks measures it.

Ratios
  An implementation's speed is its time divided by the reference's, round by round:
  per block the median of log(t / t_ref), the estimate is the median of the block
  medians, and its standard error their robust spread, 1.2533 * 1.4826 * MAD / sqrt(blocks)
  (never less than the same formula on all rounds, nor :data:`SE_FLOOR`). Medians at both
  levels: a contention burst spoils a few rounds, an allocator that settles late spoils
  the start of a block, and neither moves the estimate much. Absolute times move by tens of
  percent between runs on a shared machine; these ratios by 1% to 4% (standard deviation
  of the log ratio between runs of identical copies: 0.007 to 0.013 on a quiet day of
  this repository's 2 shared cores, 0.04 on a noisy one; ``benchmarks/gate_calibration.py``).

The gate
  Comparing these ratios with a baseline's is :mod:`dnspec.benchmarks.gate`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields

import torch

from dnspec.generation.cases import CdnCase, make_targets

FORMAT = "dnspec-bench/1"
DEFAULT_BATCH_SIZES = (1, 4, 16, 64, 256)
DEFAULT_MAX_BOXES = 20
DEFAULT_NUM_DENOISING = 100
DEFAULT_NUM_QUERIES = 300
DEFAULT_NUM_CLASSES = 80
DEFAULT_EMBED_DIM = 256
DEFAULT_ROUNDS = 20
DEFAULT_BLOCKS = 4
DEFAULT_MIN_SAMPLE_S = 0.004
DEFAULT_WARMUP = 3
DEFAULT_WARMUP_S = 0.1
MAX_WARMUP_CALLS = 50
WARM_ROUNDS = 1  # interleaved rounds run and discarded at the start of each block
MAX_CALLS_PER_SAMPLE = 200

# Scaling sweeps: each varies one knob around the centre, the others held there.
SCALING_CENTRE = {"batch_size": 16, "max_boxes": 20, "num_denoising": 100, "num_queries": 300, "embed_dim": 256}
SCALING_SWEEPS = {
    "batch_size": (1, 4, 16, 64, 256),
    "max_boxes": (1, 5, 20, 50, 100),
    "num_denoising": (20, 50, 100, 300, 1000),
    "num_queries": (100, 300, 900),
    "embed_dim": (64, 256, 1024),
}

# the least standard error a ratio is believed to have
SE_FLOOR = 0.005
_MAD_TO_SE = 1.2533 * 1.4826

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


class BenchError(Exception):
    """A benchmark cannot run as asked (bad option, unusable baseline); one line says why."""


# --- workloads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    batch_size: int
    max_boxes: int = DEFAULT_MAX_BOXES
    num_denoising: int = DEFAULT_NUM_DENOISING
    num_queries: int = DEFAULT_NUM_QUERIES
    num_classes: int = DEFAULT_NUM_CLASSES
    embed_dim: int = DEFAULT_EMBED_DIM
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0

    @property
    def key(self) -> str:
        """Identifies the workload in JSON files and baselines."""
        return (
            f"bs={self.batch_size} boxes={self.max_boxes} dn={self.num_denoising} q={self.num_queries} "
            f"classes={self.num_classes} d={self.embed_dim} {self.device} {self.dtype} seed={self.seed}"
        )

    @property
    def short(self) -> str:
        return f"bs={self.batch_size} boxes={self.max_boxes} dn={self.num_denoising}"

    def counts(self) -> list[int]:
        """Boxes per image: image 0 has ``max_boxes`` (so the padded width is fixed), the
        others a seeded uniform draw from [0, max_boxes] (empty images included)."""
        rng = random.Random(self.seed)
        counts = [rng.randint(0, self.max_boxes) for _ in range(self.batch_size)]
        if counts:
            counts[0] = self.max_boxes
        return counts

    @property
    def num_groups(self) -> int:
        return max(1, self.num_denoising // self.max_boxes) if self.max_boxes else 0

    @property
    def dn_queries(self) -> int:
        """N, the denoising queries per image: 2 * max_boxes * groups."""
        return 2 * self.max_boxes * self.num_groups

    def case(self) -> CdnCase:
        dtype = DTYPES[self.dtype]
        targets = make_targets(
            self.counts(), seed=self.seed, num_classes=self.num_classes, dtype=dtype, device=self.device
        )
        return CdnCase(
            targets=targets,
            num_classes=self.num_classes,
            num_queries=self.num_queries,
            num_denoising=self.num_denoising,
            embed_dim=self.embed_dim,
            seed=self.seed,
            dtype=dtype,
            device=self.device,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Workload:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def grid(
    batch_sizes=DEFAULT_BATCH_SIZES,
    max_boxes=(DEFAULT_MAX_BOXES,),
    num_denoising=(DEFAULT_NUM_DENOISING,),
    device: str = "cpu",
    dtype: str = "float32",
    **common,
) -> list[Workload]:
    return [
        Workload(batch_size=b, max_boxes=m, num_denoising=n, device=device, dtype=dtype, **common)
        for m in max_boxes
        for n in num_denoising
        for b in batch_sizes
    ]


def scaling_workloads(device: str = "cpu", dtype: str = "float32") -> dict[str, list[Workload]]:
    """The three sweeps of ``dnspec bench --scaling``: {knob: workloads}."""
    return {
        knob: [Workload(**{**SCALING_CENTRE, knob: value}, device=device, dtype=dtype) for value in values]
        for knob, values in SCALING_SWEEPS.items()
    }


# --- calling --------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    """Wait for queued device work (CUDA, MPS); nothing on the CPU."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


class Caller:
    """Calls one implementation on one workload the way the benchmark times it: fresh
    (cloned) targets per call, prepared by :meth:`prepare` outside the timed region, and
    translated there by ``translate`` (args tuple -> (args, kwargs)) when the callable
    timed is a peer's own function rather than dnspec's adapter of it."""

    def __init__(self, fn: Callable, workload: Workload, translate: Callable | None = None):
        self.fn = fn
        self.workload = workload
        self.translate = translate or (lambda args: (args, {}))
        case = workload.case()
        self._case = case
        self._embed = case.class_embed()
        self._embed.weight.requires_grad_(True)

    def prepare(self, k: int = 1) -> list[tuple]:
        return [self.translate(self._case.args(self._embed)) for _ in range(k)]

    def run(self, prepared: list[tuple]):
        """Call on each prepared argument tuple, dropping each output before the next call
        (so one output is alive at a time, whatever the number of calls); returns the last."""
        out = None
        fn = self.fn
        for args, kwargs in prepared:
            out = None
            out = fn(*args, **kwargs)
        return out

    def seed(self) -> None:
        torch.manual_seed(self.workload.seed)


def _transformers_args(args: tuple) -> tuple[tuple, dict]:
    """dnspec's positional arguments in transformers' convention (``class_labels``,
    ``num_denoising_queries``)."""
    targets, num_classes, num_queries, class_embed, num_denoising, ratio, scale = args
    targets = [{("class_labels" if key == "labels" else key): value for key, value in t.items()} for t in targets]
    return (targets, num_classes, num_queries, class_embed), {
        "num_denoising_queries": num_denoising,
        "label_noise_ratio": ratio,
        "box_noise_scale": scale,
    }


def timed_callable(impl, native_peers: bool = True) -> tuple[Callable, Callable | None, str]:
    """(callable, argument translator, note) for timing ``impl``. A transformers port is
    timed natively: its inputs are renamed outside the clock and its float additive mask
    is not converted to dnspec's bool mask (that conversion is dnspec's cost, not the
    port's). Everything else, other adapters included, is timed as its SPEC is called."""
    fn = getattr(impl, "fn", impl)
    port = getattr(impl, "extra", {}).get("port") if native_peers else None
    if port is not None and str(getattr(impl, "name", "")).startswith("transformers-"):
        return port, _transformers_args, "the port itself: inputs renamed outside the clock, float mask left as it is"
    return fn, None, ""


def output_bytes(out) -> int:
    """Bytes of the distinct storages the output's tensors hold (views counted once)."""
    seen: dict[int, int] = {}

    def visit(obj):
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item)

    visit(out)
    return sum(seen.values())


# --- peak memory ----------------------------------------------------------------------------

MEMORY_METHODS = {
    "cpu": "torch CPU allocator: peak of the bytes allocated minus freed during the call (torch.profiler memory events); "
    "tensor storage only, Python objects not counted",
    "cuda": "CUDA caching allocator: torch.cuda.max_memory_allocated during the call minus memory_allocated before it",
}


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the profiler's own lines on fd 2 (kineto prints 'profiler_start/stop'),
    passing through anything else the call writes there."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode(errors="replace").splitlines(keepends=True)
                if "ActivityProfiler" not in line and "profiler_st" not in line
            ]
            if kept:
                sys.stderr.write("".join(kept))


def peak_memory(caller: Caller) -> tuple[int | None, int | None, str]:
    """(peak bytes allocated during one call above what was live before it, output bytes,
    method) for one untimed call; (None, None, reason) where it cannot be measured."""
    device = torch.device(caller.workload.device)
    prepared = caller.prepare(1)
    caller.seed()
    synchronize(caller.workload.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = caller.run(prepared)
        synchronize(caller.workload.device)
        return torch.cuda.max_memory_allocated(device) - before, output_bytes(out), "cuda"
    if device.type != "cpu":
        out = caller.run(prepared)
        return None, output_bytes(out), f"not measured on {device.type}"
    try:
        from torch.profiler import ProfilerActivity, profile

        with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = caller.run(prepared)
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except Exception as exc:  # profiler missing or changed: say so, measure nothing
        out = caller.run(caller.prepare(1))
        return None, output_bytes(out), f"unavailable ({type(exc).__name__}: {exc})"
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        if event.device_type() == torch.autograd.DeviceType.CPU:
            live += event.nbytes()
            peak = max(peak, live)
    return peak, output_bytes(out), "cpu"


# --- results --------------------------------------------------------------------------------


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
    for a, b, block in zip(samples, reference_samples, blocks):
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
    try:
        env["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return env


# --- measuring ------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_gc():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run with ``threads`` intra-op threads (None: leave torch's setting)."""
    if threads is None:
        yield torch.get_num_threads()
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(saved)


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
CLOCK_TEXT = {
    "wall": "wall-clock time (time.perf_counter), device work synchronised",
    "cpu": "CPU time of the calling thread (time.thread_time): what the call costs a core, excluding time spent "
    "waiting for one on a shared machine; needs one torch thread and a CPU workload",
}


def resolve_clock(clock: str, device: str, threads: int) -> str:
    """'auto' -> 'cpu' for a single-threaded CPU workload, else 'wall'."""
    on_cpu = torch.device(device).type == "cpu"
    if clock == "auto":
        return "cpu" if on_cpu and threads == 1 else "wall"
    if clock not in CLOCKS:
        raise BenchError(f"--clock {clock!r}: choose wall, cpu or auto")
    if clock == "cpu" and not (on_cpu and threads == 1):
        raise BenchError(
            "--clock cpu times the calling thread only: it needs --device cpu and --threads 1 (use --clock wall)"
        )
    return clock


def time_sample(caller: Caller, k: int, clock: str = "wall") -> float:
    """Seconds per call over ``k`` back-to-back calls (arguments prepared beforehand)."""
    now = CLOCKS[clock]
    prepared = caller.prepare(k)
    caller.seed()
    device = caller.workload.device
    synchronize(device)
    with _no_gc():
        start = now()
        out = caller.run(prepared)
        synchronize(device)
        elapsed = now() - start
    del out
    return elapsed / k


def _warm_up(caller: Caller, calls: int, seconds: float, clock: str) -> float:
    """Call until both ``calls`` calls and ``seconds`` of wall time have passed (first
    calls pay lazy set-up, and the allocator takes a few calls to settle: the first
    calls can be 3x to 100x a steady one), at most :data:`MAX_WARMUP_CALLS`; returns the
    fastest of the last half, which sizes the samples."""
    start, times = time.perf_counter(), []
    while len(times) < max(1, calls) or (time.perf_counter() - start < seconds and len(times) < MAX_WARMUP_CALLS):
        times.append(time_sample(caller, 1, clock))
    return min(times[len(times) // 2 :])


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


_ALLOCATOR_NOTE = ""


def steady_allocator() -> str:
    """Serve every allocation from glibc malloc's heap and never give memory back to the
    OS (M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB), once per process, so that a call's cost no
    longer depends on whether malloc happens to hand it fresh pages.

    Left to glibc's defaults, an output of a few MB up is served sometimes from the heap
    and sometimes from fresh mmap'd or re-grown memory that the kernel must fault in and
    zero (about 0.28 ms per MB here: 14 ms of a 22 ms call at batch 256), depending on
    what ran before: the same call costs 1x or 2.5x, run to run and block to block. That
    is the allocator's history, not the builder's work (a CUDA caching allocator, or
    jemalloc/tcmalloc, would not pay it per call), so the benchmark measures the warm
    regime; ``--default-allocator`` measures glibc as configured. Returns a note for
    the report ('' where malloc is not glibc's, and nothing is changed)."""
    global _ALLOCATOR_NOTE
    if _ALLOCATOR_NOTE or not sys.platform.startswith("linux"):
        return _ALLOCATOR_NOTE
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):
            return ""
        ok = libc.mallopt(-4, 0) == 1 and libc.mallopt(-1, 2**31 - 1) == 1  # M_MMAP_MAX, M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return ""
    if ok:
        _ALLOCATOR_NOTE = (
            "glibc malloc held warm (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB; dnspec.benchmarks.bench.steady_allocator): "
            "times exclude page faults on fresh memory"
        )
    return _ALLOCATOR_NOTE


def measure(
    impls: list,
    workloads: Iterable[Workload],
    *,
    rounds: int = DEFAULT_ROUNDS,
    blocks: int = DEFAULT_BLOCKS,
    min_sample_s: float = DEFAULT_MIN_SAMPLE_S,
    warmup: int = DEFAULT_WARMUP,
    warmup_s: float = DEFAULT_WARMUP_S,
    clock: str = "wall",
    memory: bool = True,
    steady: bool = True,
    specs: list[str] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
    time_limit_s: float | None = None,
    native_peers: bool = True,
) -> list[Measurement]:
    """Time every implementation on every workload, interleaved within each workload.

    ``impls``: :class:`~dnspec.implementations.specs.Implementation` objects (or plain callables), named
    by ``specs`` (default: their names). The ``rounds`` of a workload are split into
    ``blocks``; each block builds fresh inputs and embeddings (new allocations), so that
    what the memory layout of one block favours is averaged out over blocks, and the
    spread between blocks measures it. ``on_progress(description, n)`` hears of every
    round. An implementation that raises, or whose sample runs past ``time_limit_s``
    (SIGALRM, main thread only; the alarm is set outside the timed region), is recorded
    with its error for that workload and not called again on it.
    """
    from dnspec.running.calling import time_limit

    if steady:
        steady_allocator()
    specs = specs or [getattr(impl, "name", None) or getattr(impl, "__name__", repr(impl)) for impl in impls]
    timed = {spec: timed_callable(impl, native_peers) for spec, impl in zip(specs, impls)}
    blocks = max(1, min(blocks, rounds))
    out: list[Measurement] = []
    for workload in workloads:
        rows = {
            spec: Measurement(spec=spec, label=getattr(impl, "label", spec), workload=workload, note=timed[spec][2])
            for spec, impl in zip(specs, impls)
        }
        k = None
        done = 0
        for block in range(blocks):
            callers: dict[str, Caller] = {}
            block_rounds = rounds // blocks + (1 if block < rounds % blocks else 0)
            fastest = math.inf
            for spec in specs:
                if rows[spec].error is not None:
                    continue
                try:
                    callers[spec] = Caller(timed[spec][0], workload, timed[spec][1])
                    with time_limit(time_limit_s and time_limit_s * (warmup + 1), f"{spec} on {workload.short}"):
                        if block == 0:
                            fastest = min(fastest, _warm_up(callers[spec], warmup, warmup_s, clock))
                        else:  # the process is warm; settle the new inputs' allocations
                            _warm_up(callers[spec], 2, 0.0, clock)
                except Exception as exc:  # the implementation's failure, recorded for its row
                    rows[spec].error = _error_text(exc)
            live = [spec for spec in specs if rows[spec].error is None]
            if k is None:
                # One k for the workload, sized by its fastest implementation: every
                # implementation's samples then have the same structure (k calls, k inputs).
                k = max(1, min(MAX_CALLS_PER_SAMPLE, math.ceil(min_sample_s / max(fastest, 1e-9)))) if live else 1
            for _ in range(WARM_ROUNDS):  # untimed for the result: the interleaved pattern settles
                for spec in live:
                    if rows[spec].error is None:
                        try:
                            with time_limit(time_limit_s and time_limit_s * k, f"{spec} on {workload.short}"):
                                time_sample(callers[spec], k, clock)
                        except Exception as exc:
                            rows[spec].error = _error_text(exc)
            for _ in range(block_rounds):
                shift = done % len(live) if live else 0
                measured = {}
                for spec in live[shift:] + live[:shift]:
                    if rows[spec].error is not None:
                        continue
                    try:
                        with time_limit(time_limit_s and time_limit_s * k, f"{spec} on {workload.short}"):
                            measured[spec] = time_sample(callers[spec], k, clock)
                    except Exception as exc:
                        rows[spec].error = _error_text(exc)
                for spec in specs:
                    rows[spec].samples.append(measured.get(spec))
                    rows[spec].blocks.append(block)
                done += 1
                if on_progress:
                    on_progress(workload.short, 1)
            if memory and block == blocks - 1:
                for spec in live:
                    row = rows[spec]
                    if row.error is not None:
                        continue
                    try:
                        with time_limit(time_limit_s, f"{spec} on {workload.short}"):
                            row.peak_bytes, row.output_bytes, row.memory_method = peak_memory(callers[spec])
                    except Exception as exc:
                        row.error = _error_text(exc)
            callers.clear()
        for row in rows.values():
            row.calls_per_sample = k or 1
        out.extend(rows[spec] for spec in specs)
    return out
