"""One call of a CDN builder, as data: the inputs every property, benchmark and error-input
family passes around.

A :class:`CdnCase` holds the targets and the configuration, plus the seed that makes the
call reproducible: ``case.call(impl)`` seeds torch's global RNG with ``case.seed`` and
builds the class embedding from it, so the same case always gives the same call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True, eq=False)
class CdnCase:
    """Inputs of one call. ``targets``: one dict per image, ``labels`` int64 [n] and
    ``boxes`` [n, 4] normalized cxcywh in ``dtype`` on ``device``."""

    targets: tuple
    num_classes: int
    num_queries: int
    num_denoising: int = 100
    label_noise_ratio: float = 0.5
    box_noise_scale: float = 1.0
    embed_dim: int = 8
    seed: int = 0
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    note: str = field(default="", compare=False)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(int(len(t["labels"])) for t in self.targets)

    @property
    def batch_size(self) -> int:
        return len(self.targets)

    def class_embed(self) -> torch.nn.Embedding:
        """``nn.Embedding(num_classes + 1, embed_dim, padding_idx=num_classes)`` with
        weights drawn from ``seed`` (row num_classes is zero, as padding_idx makes it).

        Column 0 of class c holds c + 1 (exact in every float dtype up to 256 classes), so
        no two rows coincide even with embed_dim 1 in bfloat16, and the class a query row
        carries can always be read back from it."""
        weight = _embedding_weight(self.seed, self.num_classes, self.embed_dim).to(device=self.device, dtype=self.dtype)
        # _weight: the values above, without nn.Embedding's own initialisation (drawn, then overwritten)
        return torch.nn.Embedding(
            self.num_classes + 1,
            self.embed_dim,
            padding_idx=self.num_classes,
            _weight=weight.clone(),
            device=self.device,
            dtype=self.dtype,
        )

    def fresh_targets(self) -> list[dict]:
        """A deep copy of the targets, so a call cannot change the case."""
        return [{key: value.clone() for key, value in t.items()} for t in self.targets]

    def args(self, class_embed=None) -> tuple:
        """Positional arguments in the upstream order."""
        return (
            self.fresh_targets(),
            self.num_classes,
            self.num_queries,
            self.class_embed() if class_embed is None else class_embed,
            self.num_denoising,
            self.label_noise_ratio,
            self.box_noise_scale,
        )

    def call(self, impl, class_embed=None, **kwargs):
        """Seed torch's global RNG with ``seed`` and call ``impl`` on this case."""
        args = self.args(class_embed)
        seed_torch(self.seed)
        with torch.no_grad():
            return impl(*args, **kwargs)

    def to(self, device=None, dtype=None) -> CdnCase:
        """The same case on another device or with boxes and embedding in another dtype."""
        device = self.device if device is None else str(device)
        dtype = self.dtype if dtype is None else dtype
        targets = tuple(
            {"labels": t["labels"].to(device), "boxes": t["boxes"].to(device=device, dtype=dtype)} for t in self.targets
        )
        return replace(self, targets=targets, device=device, dtype=dtype)

    def with_config(self, **changes) -> CdnCase:
        return replace(self, **changes)

    def _repr_pretty_(self, printer, cycle) -> None:
        """Hypothesis prints counterexamples with this: exact, pasteable Python."""
        printer.text(repr(self))

    def __repr__(self) -> str:
        """Python source that rebuilds this case (printed in counterexamples)."""
        images = ", ".join(
            f"{{'labels': torch.tensor({t['labels'].tolist()}, dtype=torch.int64), "
            f"'boxes': torch.tensor({_short_floats(t['boxes'])}, dtype={self.dtype}).reshape(-1, 4)}}"
            for t in self.targets
        )
        fields = [
            f"targets=({images}{',' if len(self.targets) == 1 else ''})",
            f"num_classes={self.num_classes}",
            f"num_queries={self.num_queries}",
            f"num_denoising={self.num_denoising}",
            f"label_noise_ratio={self.label_noise_ratio!r}",
            f"box_noise_scale={self.box_noise_scale!r}",
            f"embed_dim={self.embed_dim}",
            f"seed={self.seed}",
        ]
        if self.dtype != torch.float32:
            fields.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            fields.append(f"device={self.device!r}")
        if self.note:
            fields.append(f"note={self.note!r}")
        return f"CdnCase({', '.join(fields)})"


@functools.lru_cache(maxsize=256)
def _embedding_weight(seed: int, num_classes: int, embed_dim: int) -> torch.Tensor:
    """The class embedding of a case, float32 on the CPU (callers copy it): random rows
    from ``seed``, column 0 the class number + 1, the padding row zero."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_classes + 1, embed_dim, generator=generator)
    weight[:, 0] = torch.arange(1, num_classes + 2, dtype=weight.dtype)
    weight[num_classes] = 0
    return weight


def seed_torch(seed: int) -> None:
    """``torch.manual_seed(seed)`` for the generators an implementation can draw from: the
    CPU's, CUDA's where CUDA exists (queued until CUDA initializes, as torch.manual_seed
    queues it) and MPS's. It skips only the lazy MTIA and XPU backends, whose queued seeds
    cost torch.manual_seed a recorded stack trace each, about a millisecond a call."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        mps.manual_seed(seed)


def _short_floats(boxes: torch.Tensor) -> str:
    return repr([[float(v) for v in row] for row in boxes.double().cpu()])


def make_targets(counts, *, seed: int = 0, num_classes: int = 80, dtype=torch.float32, device="cpu") -> tuple:
    """Seeded random valid targets with ``counts[i]`` boxes in image i (for benchmarks and
    hand-written tests; the property suite draws its own with Hypothesis)."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for n in counts:
        wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 0.5 + 0.01
        centre = wh / 2 + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (1 - wh)
        targets.append(
            {
                "labels": torch.randint(0, num_classes, (n,), generator=generator).to(device),
                "boxes": torch.cat([centre, wh], dim=1).to(device=device, dtype=dtype),
            }
        )
    return tuple(targets)


def random_ragged_case(generator: torch.Generator) -> CdnCase:
    """A ragged float32 batch drawn from ``generator`` (for tests that compare two
    implementations on many batches): empty images (never all), max_gt above and below
    num_denoising, every noise setting from none to strong."""
    batch_size = int(torch.randint(1, 7, (1,), generator=generator))
    counts = torch.randint(0, 10, (batch_size,), generator=generator)
    counts[torch.rand(batch_size, generator=generator) < 0.3] = 0
    if int(counts.max()) == 0:
        counts[0] = 1
    num_classes = int(torch.randint(1, 91, (1,), generator=generator))
    seed = int(torch.randint(0, 2**31, (1,), generator=generator))
    ratio, scale = torch.rand(2, generator=generator).tolist()
    return CdnCase(
        make_targets(counts.tolist(), seed=seed, num_classes=num_classes),
        num_classes=num_classes,
        num_queries=int(torch.randint(0, 40, (1,), generator=generator)),
        num_denoising=int(torch.randint(1, 121, (1,), generator=generator)),
        label_noise_ratio=0.0 if ratio < 0.15 else ratio,
        box_noise_scale=0.0 if scale < 0.15 else 2 * scale,
        embed_dim=8,
        seed=seed,
    )
