"""A fast CDN query builder with the reference's contract.

Given the same injected :class:`~dnspec.noise.NoiseDraw` its outputs are bit-identical
to :mod:`dnspec.reference` (a property of the suite checks it on every generated input);
with the global RNG it draws the same distributions (all noise in one call of
:func:`~dnspec.noise.draw_noise`, so in upstream order too).

How it avoids the reference's costs:
  * no Python loop over images or groups: each dn row's source box is index arithmetic
    on the box counts (done on the host), and padding plus tiling is one index_select
    from the concatenated boxes with one padding entry appended;
  * box arithmetic that does not depend on the noise (corners, half sizes) runs once per
    ground-truth box, before the gather (elementwise ops commute with gathering, so the
    values are bit-identical to the reference's);
  * the attention mask and the row roles depend only on (max_gt, G, Q, device) and are
    cached; callers receive a fresh copy of the mask;
  * no host-device synchronisation: box counts come from tensor shapes (metadata), and
    the positive index lists are built on the host from them. ``max_gt=`` fixes the
    padded width (e.g. the dataset's maximum) so that shapes stay static across batches.

``fix_upstream=True`` fixes the three upstream advisories (see :mod:`dnspec.advisories`):
  (a) boxes are returned in logit space at every box_noise_scale, 0 included;
  (b) noised corners are reordered per axis (min, max) before the clip, so a box whose
      corners crossed becomes the box they span instead of collapsing to side ~1e-5;
  (c) a replaced label is drawn from the num_classes - 1 *other* classes (when there are
      any): the draw's replacement r in [0, num_classes) is mapped to
      (label + 1 + r mod (num_classes - 1)) mod num_classes, which is uniform over the
      others when r is uniform over [0, num_classes - 1); with the global RNG the fixed
      builder draws r that way, so the label changes with probability ratio/2 exactly.
Without the switch the builder stays bit-compatible with upstream.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from dnspec.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid
from dnspec.noise import NoiseDraw, draw_noise

NO_OUTPUT = (None, None, None, None)


@functools.lru_cache(maxsize=64)
def _row_roles(max_gt: int, num_group: int, num_queries: int, device: torch.device):
    """For one shape: negative [N, 1] bool (on device), the slot and positive-half flag
    of each dn row (numpy, host), and the attention mask [N+Q, N+Q] bool (on device):
    mask[i, j] = j < N and group(i) != group(j), object queries having group -1."""
    n = 2 * max_gt * num_group
    rows = torch.arange(n + num_queries)
    group = torch.where(rows < n, rows // (2 * max_gt), -1)
    mask = (group[:, None] != group[None, :]) & (rows < n)[None, :]
    dn_rows = np.arange(n)
    negative = dn_rows % (2 * max_gt) >= max_gt
    return torch.from_numpy(negative[:, None]).to(device), dn_rows % max_gt, ~negative, mask.to(device)


@functools.lru_cache(maxsize=64)
def _padding_entries(num_classes: int, box_dtype: torch.dtype, device: torch.device):
    """The label (num_classes) and box (zeros) that padding rows gather."""
    return torch.tensor([num_classes], device=device), torch.zeros(1, 4, dtype=box_dtype, device=device)


def _row_sources(counts: list[int], slot: np.ndarray, positive_half: np.ndarray):
    """Host-side index arithmetic on the box counts (numpy: no device work, no sync).

    source [bs, N]: for row r of image i, the position of its box in the batch's
    concatenated boxes (offset_i + slot(r)), or the total box count T (a padding entry
    appended after the real boxes) when slot(r) >= n_i;
    positive: every image's positive rows g*2m + s (s < n_i), image after image.
    """
    counts_np = np.asarray(counts, dtype=np.int64)
    total = int(counts_np.sum())
    offsets = np.cumsum(counts_np) - counts_np
    real = slot[None, :] < counts_np[:, None]
    source = np.where(real, offsets[:, None] + slot[None, :], total)
    positive = np.nonzero(real & positive_half[None, :])[1]
    return torch.from_numpy(source.reshape(-1)), torch.from_numpy(positive), total


def _replacement_labels(labels: torch.Tensor, replacement: torch.Tensor, num_classes: int, fix_upstream: bool):
    """Upstream: the drawn replacement as it is. Fixed: (label + 1 + r mod (C - 1)) mod C,
    never the label itself (C = num_classes > 1)."""
    if not fix_upstream or num_classes < 2:
        return replacement.to(labels.dtype)
    others = num_classes - 1
    return ((labels.to(torch.int64) + 1 + replacement.to(torch.int64) % others) % num_classes).to(labels.dtype)


def build_from_noise(
    targets,
    num_classes: int,
    num_queries: int,
    class_embed,
    num_denoising: int,
    label_noise_ratio: float,
    box_noise_scale: float,
    noise: NoiseDraw,
    *,
    max_gt: int | None = None,
    fix_upstream: bool = False,
):
    """Apply one noise draw: the deterministic part of the builder, vectorised.

    Every dn row gathers its ground truth from the concatenated boxes (plus one padding
    entry: label num_classes, box 0), so padding and tiling are one index_select; the
    noise-free box arithmetic (corners, half sizes) runs once per ground-truth box."""
    if num_denoising <= 0:
        return NO_OUTPUT
    counts = [len(t["labels"]) for t in targets]
    largest = max(counts) if counts else 0
    if largest == 0:
        return NO_OUTPUT
    if max_gt is None:
        max_gt = largest
    elif max_gt < largest:
        raise ValueError(f"max_gt: {max_gt} is smaller than the largest image's box count {largest}")
    device = targets[0]["labels"].device
    box_dtype = targets[0]["boxes"].dtype
    num_group = max(1, num_denoising // max_gt)
    num_dn = 2 * max_gt * num_group
    negative, slot, positive_half, mask = _row_roles(max_gt, num_group, num_queries, device)
    source, positive, total = _row_sources(counts, slot, positive_half)
    source = source.to(device)
    padding_label, padding_box = _padding_entries(num_classes, box_dtype, device)

    labels = torch.cat([*(t["labels"] for t in targets), padding_label])
    query_labels = labels.to(torch.int32).index_select(0, source).view(len(counts), num_dn)
    if label_noise_ratio > 0:
        _require(noise.label_flip is not None and noise.replacement_label is not None, "label")
        real = (source < total).view(len(counts), num_dn)
        new_label = _replacement_labels(query_labels, noise.replacement_label, num_classes, fix_upstream)
        query_labels = torch.where(noise.label_flip & real, new_label, query_labels)

    boxes = torch.cat([*(t["boxes"].to(box_dtype) for t in targets), padding_box])
    if box_noise_scale > 0:
        _require(noise.box_sign is not None and noise.box_magnitude is not None, "box")
        centre, size = boxes[:, :2], boxes[:, 2:]
        half = size * 0.5
        # per gt box: corners (cx - 0.5w, cy - 0.5h, cx + 0.5w, cy + 0.5h), then diff
        # (0.5w, 0.5h, 0.5w, 0.5h) * scale: the reference's expressions, element by element
        per_box = torch.cat([centre - 0.5 * size, centre + 0.5 * size, half * box_noise_scale, half * box_noise_scale], dim=1)
        per_row = per_box.index_select(0, source).view(len(counts), num_dn, 8)
        corners, diff = per_row[..., :4], per_row[..., 4:]
        magnitude = noise.box_magnitude.to(box_dtype)
        rand_part = torch.where(negative, magnitude + 1.0, magnitude) * noise.box_sign.to(box_dtype)
        corners = (corners + rand_part * diff).clamp_(min=0.0, max=1.0)
        low, high = corners[..., :2], corners[..., 2:]
        if fix_upstream:
            low, high = torch.minimum(low, high), torch.maximum(low, high)
        query_boxes = inverse_sigmoid(torch.cat([(low + high) / 2, high - low], dim=-1))
    else:
        query_boxes = boxes.index_select(0, source).view(len(counts), num_dn, 4)
        if fix_upstream:
            query_boxes = inverse_sigmoid(query_boxes)

    dn_meta = {
        "dn_positive_idx": torch.split(positive.to(device), [n * num_group for n in counts]),
        "dn_num_group": num_group,
        "dn_num_split": [num_dn, num_queries],
    }
    return class_embed(query_labels), query_boxes, mask.clone(), dn_meta


def _require(present: bool, which: str) -> None:
    if not present:
        raise ValueError(
            f"noise: the injected NoiseDraw has no {which} noise, but the call asks for it "
            f"(draw it with the same label_noise_ratio and box_noise_scale)"
        )


def get_contrastive_denoising_training_group(
    targets,
    num_classes: int,
    num_queries: int,
    class_embed,
    num_denoising: int = 100,
    label_noise_ratio: float = 0.5,
    box_noise_scale: float = 1.0,
    *,
    noise: NoiseDraw | None = None,
    generator: torch.Generator | None = None,
    max_gt: int | None = None,
    fix_upstream: bool = False,
    validate: bool = True,
):
    """The fast builder: the reference's signature and contract, plus ``max_gt`` (a fixed
    padded width) and ``fix_upstream`` (see the module docstring)."""
    if validate:
        from dnspec.validation import validate_cdn_inputs

        validate_cdn_inputs(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)
    if num_denoising <= 0:
        return NO_OUTPUT
    counts = [len(t["labels"]) for t in targets]
    largest = max(counts) if counts else 0
    if largest == 0:
        return NO_OUTPUT
    width = largest if max_gt is None else max_gt
    if noise is None:
        num_group = max(1, num_denoising // width)
        # the fixed builder draws replacements from the num_classes - 1 other classes
        classes = num_classes - 1 if fix_upstream and num_classes > 1 else num_classes
        noise = draw_noise(
            len(targets),
            2 * width * num_group,
            classes,
            label_noise_ratio,
            box_noise_scale,
            device=targets[0]["labels"].device,
            box_dtype=targets[0]["boxes"].dtype,
            generator=generator,
        )
    return build_from_noise(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        noise,
        max_gt=max_gt,
        fix_upstream=fix_upstream,
    )


def embedding_floor(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0, **_):
    """Not a builder: only the class-embedding lookup of the output's size [bs, N, D],
    the floor any implementation pays (benchmarks time the builders against it)."""
    counts = [len(t["labels"]) for t in targets]
    largest = max(counts) if counts else 0
    if num_denoising <= 0 or largest == 0:
        return NO_OUTPUT
    rows = 2 * largest * max(1, num_denoising // largest)
    labels = torch.full((len(counts), rows), num_classes, dtype=torch.int32, device=targets[0]["labels"].device)
    return class_embed(labels), None, None, None


def builtin_implementations():
    """Built-in SPEC names: ``fast`` (upstream-compatible) and ``fast-fixed``."""
    from dnspec import __version__
    from dnspec.specs import Implementation

    def fast():
        return Implementation(
            name="fast",
            fn=get_contrastive_denoising_training_group,
            accepts_noise=True,
            version=f"dnspec {__version__}",
            description="vectorised builder, bit-identical to the reference under one draw",
        )

    def fast_fixed():
        return Implementation(
            name="fast-fixed",
            fn=functools.partial(get_contrastive_denoising_training_group, fix_upstream=True),
            accepts_noise=True,
            fixes_advisories=True,
            version=f"dnspec {__version__}",
            description="vectorised builder with the upstream advisories fixed",
        )

    return {"fast": fast, "fast-fixed": fast_fixed}
