"""What one benchmarked call is: a :class:`Workload` (one call's shape), the grids and
scaling sweeps of workloads ``dnspec bench`` runs, the defaults of a run, and a
:class:`Caller` that calls one implementation on one workload the way the benchmark times
it (fresh cloned targets per call, prepared outside the timed region; a transformers port
called natively, its inputs renamed outside the clock: :func:`timed_callable`).

The invariant: a workload is reproducible from its fields alone (its box counts and
targets are drawn from its ``seed``), and its ``key`` names it in result files and
baselines. How the calls are timed is :mod:`dnspec.benchmarks.timing`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch

from dnspec.generation.cases import CdnCase, make_targets

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

# Scaling sweeps: each varies one knob around the centre, the others held there.
SCALING_CENTRE = {"batch_size": 16, "max_boxes": 20, "num_denoising": 100, "num_queries": 300, "embed_dim": 256}
SCALING_SWEEPS = {
    "batch_size": (1, 4, 16, 64, 256),
    "max_boxes": (1, 5, 20, 50, 100),
    "num_denoising": (20, 50, 100, 300, 1000),
    "num_queries": (100, 300, 900),
    "embed_dim": (64, 256, 1024),
}

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
