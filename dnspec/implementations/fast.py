"""A fast CDN query builder with the reference's contract.

Given the same injected :class:`~dnspec.contract.noise.NoiseDraw` its four outputs are
bit-identical to :mod:`dnspec.contract.reference`'s, in every dtype (``properties/test_fast.py``
and the suite's exact differential property check it). With the global RNG (or a
``generator``) it draws upstream's distributions, but fused, only for the rows that copy a
real box, and not in upstream's order, so a seed does not reproduce upstream's numbers:

  * a real row's label is replaced with probability label_noise_ratio / 2 (a float32
    uniform below ratio / 2, as upstream compares it) by one drawn uniformly from
    [0, num_classes) by ``torch.randint``;
  * each box coordinate moves by diff * rand_part, rand_part = s + copysign(neg, s), where
    s is uniform on (-c, c) in the box dtype, c = 1 - eps/2 the largest value below 1, and
    neg is 1 on the negative half of a group: so its sign is fair, its magnitude |s| is
    uniform on [0, 1) (upstream: ``torch.rand``), plus 1 for negatives (rounded in the box
    dtype, as upstream's ``rand + 1.0`` is), and one uniform gives both (upstream draws a
    sign and a magnitude separately).

Where the reference's time goes and what replaces it:
  * no Python loop over images or groups, and no work on padding rows. Row r of image i
    copies box ``r mod m`` of the image (m = the padded width) or is padding. Only the
    real rows are computed: the 2G copies (j = 2g + half) of the batch's T boxes,
    concatenated, in a copy-major [2G, T] layout, tiled by broadcasting the per-box
    values over the copies (nothing gathered); padding rows have constant outputs (label
    num_classes; box inverse_sigmoid(0) when box_noise_scale > 0, else 0), so each output
    is one constant fill and one scatter of the real rows to their flat destinations
    ``i*N + g*2m + half*m + slot``;
  * the noise-free box arithmetic (corners, half sizes) runs once per ground-truth box;
    each value is computed by the reference's expression, so results are bit-identical;
  * the attention mask depends only on (m, G, Q, device): built once from group ids and
    cached, each call returns a fresh copy;
  * the positive index lists are one flat tensor cut by ``torch.split`` with sizes known
    on the host (n_i * G: ``len`` of a tensor is shape metadata, not a device value).

Host-device synchronisation. The box counts come from shapes, never from device values,
so by default a call synchronises **zero** times: the index plan (destinations and
positive indices) is computed on the host with numpy; on CPU it is used in place, on CUDA
it travels in one non-blocking copy from pinned memory (the caching host allocator keeps
the buffer alive until the copy has run). ``max_gt=`` (a padded width at least every
image's box count, e.g. the dataset's maximum) makes the output shapes a function of
(batch size, max_gt, num_denoising, num_queries) alone and computes the plan on the device
from no host data (the counts enter as views of a device ``arange``), so the call can be
traced by ``torch.compile(fullgraph=True)`` and captured in a CUDA graph (pass
``validate=False`` there: the validator reads one device value; and, as for any capture,
make one call before capturing, which fills the per-shape caches). That plan is also used
whenever the call is being compiled. With max_gt equal to the largest count the outputs
equal the default path's. Inductor fuses the arithmetic (FMA, its own log), so a compiled
call's boxes can differ from eager in the last ulp; eager, and the aot_eager backend, are
bit-identical.

``fix_upstream=True`` fixes the three upstream advisories of :mod:`dnspec.checks.advisories`:
  (a) boxes come back in logit space at every box_noise_scale, 0 included (upstream
      returns box space at scale 0, while its decoder applies a sigmoid regardless);
  (b) the noised corners are reordered per axis (min, max) before the clip to [0, 1], so
      a negative whose corners crossed becomes the box the two corners span, instead of
      collapsing to a side of ~1e-5 in inverse_sigmoid's clamp;
  (c) with num_classes > 1 a replaced label is always another class: the replacement r
      is read as "the r-th class after the original", ``(label + 1 + r mod (C - 1)) mod C``,
      which is uniform over the C - 1 others when r is uniform on [0, C - 1) (the fixed
      builder draws it so), making the label change with probability ratio / 2 exactly.
      An injected upstream draw (r on [0, C)) is still accepted: its r = C - 1 counts as 0.
      With num_classes == 1 there is no other class and the label stays.
Without the switch the builder stays bit-compatible with upstream, quirks included.

``empty_batch="dummy"`` answers an all-empty batch (num_denoising > 0, no box) with
RT-DETRv2's dummy group instead of four Nones (:func:`dnspec.contract.conventions.dummy_group`):
one masked padding pair per image computed with class_embed, so the embedding stays in
the autograd graph and DistributedDataParallel ranks stay in step (SPECs ``fast-ddp`` and
``fast-fixed-ddp``). The default, ``"none"``, is RT-DETR's four Nones.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

from dnspec.contract.boxes import INVERSE_SIGMOID_EPS
from dnspec.contract.noise import NoiseDraw

NO_OUTPUT = (None, None, None, None)


# --- what depends on the shape only (cached) -------------------------------------------


def _cached(fn):
    """lru_cache, bypassed while torch.compile traces (the trace records the ops instead)."""
    cached = functools.lru_cache(maxsize=64)(fn)

    @functools.wraps(fn)
    def call(*args):
        if torch.compiler.is_compiling():
            return fn(*args)
        return cached(*args)

    call.cache_clear = cached.cache_clear
    return call


@_cached
def _attn_mask(max_gt: int, num_group: int, num_queries: int, device: torch.device) -> torch.Tensor:
    """bool [N+Q, N+Q], True = may not attend: ``mask[i, j] = j < N and group(i) != group(j)``
    with group(r) = r // (2m) for dn rows and -1 for object queries. Callers get a copy."""
    num_dn = 2 * max_gt * num_group
    rows = torch.arange(num_dn + num_queries, device=device)
    is_dn = rows < num_dn
    group = torch.where(is_dn, rows // (2 * max_gt), -1)
    return (group[:, None] != group[None, :]) & is_dn[None, :]


@_cached
def _negative(num_group: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[2G, 1, 1, 1] in the box dtype: copy j = 2g + half of a box is on the negative half
    when j is odd (1), else 0. Adding it to a magnitude m in [0, 1) gives the reference's
    ``(m + 1) * neg + m * (1 - neg)`` exactly (m + 0 = m, and m * 0 = 0 for finite m >= 0)."""
    return (torch.arange(2 * num_group, device=device) % 2).to(dtype)[:, None, None, None]


@_cached
def _padding_box(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """0-d: what each coordinate of a padding row's box becomes when box_noise_scale > 0 (or
    under fix_upstream). The reference noises the zero box: 0 + rand_part * 0 is 0 (or -0,
    and 0 + -0 = 0), the clip keeps 0, cxcywh gives 0, so inverse_sigmoid(0), computed here
    by the same operations on the same device and dtype (never read back to the host)."""
    return _inverse_sigmoid(torch.zeros((), dtype=dtype, device=device))


@_cached
def _corner_signs(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[2, 1, 1]: -1 for the (x1, y1) corner, +1 for the (x2, y2) corner."""
    return torch.tensor([-1.0, 1.0], dtype=dtype, device=device)[:, None, None]


@functools.lru_cache(maxsize=64)
def _copy_offsets(max_gt: int, num_group: int) -> np.ndarray:
    """numpy [2G]: the row of copy j = 2g + half of slot 0, g*2m + half*m."""
    copies = np.arange(2 * num_group)
    return copies // 2 * (2 * max_gt) + copies % 2 * max_gt


# --- the index plan: where each real row goes ---------------------------------------------
#
# The real rows are laid out copy-major, [2G, T]: row (j, k) is copy j = 2g + half of the
# batch's k-th box (image i, slot s), at flat row i*N + g*2m + half*m + s of the output.
# Copy-major keeps every broadcast over an outer dimension (per-box values over the 2G
# copies), so each elementwise operation runs over long contiguous blocks.


class _Plan(NamedTuple):
    """``rows`` int64 [2G*T]: each real row's flat output row, copy-major; ``positive``
    int64 [G*T]: the positive rows g*2m + s (g < G, s < n_i) of every image, image after
    image, each image's ascending."""

    rows: torch.Tensor
    positive: torch.Tensor


def _host_plan(counts: list[int], max_gt: int, num_group: int, device: torch.device) -> _Plan:
    """The plan computed with numpy. On CPU the arrays are used in place; on CUDA they
    travel in one non-blocking copy from pinned memory (no synchronisation)."""
    num_dn = 2 * max_gt * num_group
    n = np.array(counts, dtype=np.int64)
    start = np.cumsum(n) - n
    image = np.repeat(np.arange(len(counts)), n)
    image_start, image_count = start[image], n[image]
    slot = np.arange(len(image)) - image_start
    rows = (_copy_offsets(max_gt, num_group)[:, None] + (image * num_dn + slot)[None, :]).ravel()
    # positive copy g of box k is entry G*start_i + g*n_i + s of the flat list
    group = np.arange(num_group)[:, None]
    positive = np.empty(num_group * len(image), dtype=np.int64)
    positive[num_group * image_start + group * image_count + slot] = group * (2 * max_gt) + slot
    if device.type == "cpu":
        return _Plan(torch.from_numpy(rows), torch.from_numpy(positive))
    both = torch.from_numpy(np.concatenate([rows, positive]))
    both = both.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else both.to(device)
    return _Plan(both[: rows.size], both[rows.size :])


def _device_plan(counts: list[int], max_gt: int, num_group: int, device: torch.device) -> _Plan:
    """The same plan as :func:`_host_plan`, computed on the device from no host data: the
    counts enter as views of a device ``arange`` (``values[c:c+1]``), so nothing is copied
    from the host and nothing synchronises; traceable by torch.compile and capturable in
    a CUDA graph (which then holds these counts, as it holds the targets' shapes)."""
    num_dn = 2 * max_gt * num_group
    total = sum(counts)
    values = torch.arange(max_gt + 1, device=device)
    n = torch.cat([values[c : c + 1] for c in counts])
    start = torch.cumsum(n, 0) - n
    image = torch.repeat_interleave(torch.arange(len(counts), device=device), n, output_size=total)
    image_start, image_count = start[image], n[image]
    slot = torch.arange(total, device=device) - image_start
    copies = torch.arange(2 * num_group, device=device)
    rows = ((copies // 2 * (2 * max_gt) + copies % 2 * max_gt)[:, None] + (image * num_dn + slot)[None, :]).flatten()
    group = torch.arange(num_group, device=device)[:, None]
    positive = torch.empty(num_group * total, dtype=torch.int64, device=device)
    positive[(num_group * image_start + group * image_count + slot).flatten()] = (group * (2 * max_gt) + slot).flatten()
    return _Plan(rows, positive)


# --- the transform ----------------------------------------------------------------------


def _inverse_sigmoid(x: torch.Tensor, eps: float = INVERSE_SIGMOID_EPS) -> torch.Tensor:
    """Bit-identical to :func:`dnspec.contract.boxes.inverse_sigmoid` with one operation fewer:
    ``clamp(x, 0, 1).clamp(min=eps) == clamp(x, eps, 1)`` and
    ``(1 - clamp(x, 0, 1)).clamp(min=eps) == (1 - x).clamp(eps, 1)`` for every x, NaN and
    -0 included (for x < 0 both denominators are 1, for x > 1 both are eps)."""
    numerator = x.clamp(eps, 1)
    denominator = (1 - x).clamp_(eps, 1)
    return numerator.div_(denominator).log_()


# a dtype whose one element has the bytes of a row of 4 box values
_ROW_DTYPE = {torch.float16: torch.int64, torch.bfloat16: torch.int64, torch.float32: torch.complex128}
# per box dtype, the largest value below 1: uniform on (-bound, bound) gives |s| < 1
_BELOW_ONE = {
    dtype: 1 - torch.finfo(dtype).eps / 2 for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def _scatter_rows(out: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """``out[rows[k]] = values[k]`` for [R, 4] and [K, 4] tensors. Where a row's bytes
    match one element of an 8- or 16-byte dtype (half types, float32), each row moves as
    that one element, bit for bit: a flat scatter, 7x faster than ``index_copy_`` of
    4-wide rows on CPU at batch 256. Other widths (float64), and traces for torch.compile,
    use ``index_copy_``."""
    width = _ROW_DTYPE.get(out.dtype)
    if width is None or torch.compiler.is_compiling():  # inductor generates no complex code
        out.index_copy_(0, rows, values)
    else:
        out.view(width).view(-1).scatter_(0, rows, values.view(width).view(-1))


def _apply(
    targets,
    counts,
    num_classes,
    num_queries,
    class_embed,
    max_gt,
    num_group,
    box_noise_scale,
    flip,
    replacement,
    rand_part,
    fix_upstream,
    plan,
):
    """The deterministic part, on the real rows in the copy-major layout: ``flip`` bool and
    ``replacement`` int [2G, T] (None: no label noise); ``rand_part`` [2G, 2, T, 2] in the
    box dtype, the signed factor of diff for the (x1, y1) and the (x2, y2) corner (None: no
    box noise)."""
    device, box_dtype = targets[0]["labels"].device, targets[0]["boxes"].dtype
    bs, num_dn = len(counts), 2 * max_gt * num_group

    # empty images are left out: they add nothing, and one empty 1-D input sends
    # torch.cat on CPU down its slow per-input path (6x slower at batch 256)
    nonempty = [t for t, n in zip(targets, counts, strict=True) if n]
    labels = torch.cat([t["labels"] for t in nonempty])
    if flip is not None:
        if fix_upstream and num_classes > 1:
            replacement = (labels + 1 + replacement % (num_classes - 1)) % num_classes
        labels = torch.where(flip, replacement, labels).view(-1)
    else:
        labels = labels.repeat(2 * num_group)
    if labels.dtype != torch.int64:  # the padding label must fit, whatever the labels' dtype
        labels = labels.long()
    query_labels = torch.full((bs, num_dn), num_classes, dtype=torch.int64, device=device)
    query_labels.view(-1).scatter_(0, plan.rows, labels)

    boxes = torch.cat([t["boxes"] for t in nonempty])
    if boxes.dtype != box_dtype:  # the reference's buffer takes the first image's dtype
        boxes = boxes.to(box_dtype)
    padding = None  # zeros
    if rand_part is not None:
        centre, size = boxes.split(2, 1)
        half = size * 0.5  # the reference's 0.5 * w, and its diff before the scale
        diff = half * box_noise_scale if box_noise_scale != 1 else half
        # [2, T, 2], per box: the corners (cx - 0.5w, cy - 0.5h) and (cx + 0.5w, cy + 0.5h),
        # as centre + half * (-1 or +1): the product is exact, so the one rounding is the
        # reference's cx -+ 0.5 * w (also where addcmul fuses it into an FMA);
        # rand_part * diff + corners is then the reference's corners + rand_part * diff
        corner_boxes = torch.addcmul(centre, half, _corner_signs(device, box_dtype))
        corners = rand_part.mul_(diff).add_(corner_boxes)
        if fix_upstream:
            first, second = corners.unbind(1)
            corners = torch.stack([torch.minimum(first, second), torch.maximum(first, second)], 1)
        low, high = corners.clamp_(0.0, 1.0).unbind(1)
        real_boxes = _inverse_sigmoid(torch.cat([(low + high).div_(2), high - low], -1))
        padding = _padding_box(device, box_dtype)
    else:
        real_boxes = boxes.expand(2 * num_group, -1, 4)
        if fix_upstream:
            real_boxes = _inverse_sigmoid(boxes).expand(2 * num_group, -1, 4)
            padding = _padding_box(device, box_dtype)
    if padding is None:
        query_boxes = torch.zeros((bs, num_dn, 4), dtype=box_dtype, device=device)
    else:
        query_boxes = torch.empty((bs, num_dn, 4), dtype=box_dtype, device=device).fill_(padding)
    _scatter_rows(query_boxes.view(-1, 4), plan.rows, real_boxes.reshape(-1, 4))

    dn_meta = {
        "dn_positive_idx": torch.split(plan.positive, [n * num_group for n in counts]),
        "dn_num_group": num_group,
        "dn_num_split": [num_dn, num_queries],
    }
    mask = _attn_mask(max_gt, num_group, num_queries, device).clone()
    return class_embed(query_labels), query_boxes, mask, dn_meta


def _shape(targets, num_denoising: int, max_gt: int | None):
    """(counts, padded width m, G), or None when the call returns (None,) * 4."""
    if num_denoising <= 0:
        return None
    counts = [t["labels"].shape[0] for t in targets]  # shape metadata (len() is 4x slower)
    largest = max(counts, default=0)
    if largest == 0:
        return None
    if max_gt is None:
        max_gt = largest
    elif max_gt < largest:
        raise ValueError(f"max_gt: {max_gt} is smaller than the largest image's box count {largest}")
    return counts, max_gt, max(1, num_denoising // max_gt)


def _plan(targets, counts, max_gt, num_group, static: bool) -> _Plan:
    device = targets[0]["labels"].device
    if static or torch.compiler.is_compiling():
        return _device_plan(counts, max_gt, num_group, device)
    return _host_plan(counts, max_gt, num_group, device)


EMPTY_BATCH = ("none", "dummy")


def _empty_batch_output(
    targets, num_classes, num_queries, class_embed, num_denoising, box_noise_scale, fix_upstream: bool, empty_batch: str
):
    """What an all-empty batch gets: four Nones, or the dummy group."""
    if empty_batch not in EMPTY_BATCH:
        raise ValueError(f"empty_batch: {empty_batch!r} is not one of {EMPTY_BATCH}")
    if empty_batch == "none" or num_denoising <= 0 or not targets:
        return NO_OUTPUT
    from dnspec.contract.conventions import dummy_group

    return dummy_group(targets, num_classes, num_queries, class_embed, logit_space=fix_upstream or box_noise_scale > 0)


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
    empty_batch: str = "none",
):
    """Apply one noise draw ([bs, N] layout, as :func:`dnspec.contract.noise.draw_noise` makes it):
    the deterministic part of the builder, vectorised. Bit-identical to
    :func:`dnspec.contract.reference.build_from_noise` on the same draw when ``fix_upstream`` is
    False and max_gt is None or the largest box count (a wider max_gt needs a draw of the
    wider shape). Padding rows' noise is never read."""
    shape = _shape(targets, num_denoising, max_gt)
    if shape is None:
        return _empty_batch_output(
            targets, num_classes, num_queries, class_embed, num_denoising, box_noise_scale, fix_upstream, empty_batch
        )
    counts, width, num_group = shape
    plan = _plan(targets, counts, width, num_group, max_gt is not None)
    rows, real = plan.rows, (2 * num_group, sum(counts))
    flip = replacement = rand_part = None
    if label_noise_ratio > 0:
        _require(noise.label_flip is not None and noise.replacement_label is not None, "label")
        flip = noise.label_flip.reshape(-1)[rows].view(real)
        replacement = noise.replacement_label.reshape(-1)[rows].view(real)
    if box_noise_scale > 0:
        _require(noise.box_sign is not None and noise.box_magnitude is not None, "box")
        box_dtype = targets[0]["boxes"].dtype

        def corner_major(t):  # [bs, N, 4] -> the real rows as [2G, 2, T, 2]
            return t.to(box_dtype).reshape(-1, 4)[rows].view(*real, 2, 2).permute(0, 2, 1, 3)

        negative = _negative(num_group, targets[0]["labels"].device, box_dtype)
        rand_part = (corner_major(noise.box_magnitude) + negative) * corner_major(noise.box_sign)
    return _apply(
        targets,
        counts,
        num_classes,
        num_queries,
        class_embed,
        width,
        num_group,
        box_noise_scale,
        flip,
        replacement,
        rand_part,
        fix_upstream,
        plan,
    )


def _require(present: bool, which: str) -> None:
    if not present:
        raise ValueError(
            f"noise: the injected NoiseDraw has no {which} noise, but the call asks for it "
            f"(draw it with the same label_noise_ratio and box_noise_scale)"
        )


def _draw(
    shape, num_classes, num_group, label_noise_ratio, box_noise_scale, device, box_dtype, generator, fix_upstream
):
    """Fused draws for the real rows, ``shape`` = (2G, T): (flip, replacement, rand_part)
    with upstream's distributions (see the module docstring); the fixed builder draws
    replacements on [0, num_classes - 1)."""
    flip = replacement = rand_part = None
    if label_noise_ratio > 0:
        flip = torch.rand(shape, device=device, generator=generator) < label_noise_ratio * 0.5
        classes = num_classes - 1 if fix_upstream and num_classes > 1 else num_classes
        replacement = torch.randint(0, classes, shape, device=device, generator=generator)
    if box_noise_scale > 0:
        bound = _BELOW_ONE[box_dtype]
        s = torch.empty((shape[0], 2, shape[1], 2), dtype=box_dtype, device=device).uniform_(
            -bound, bound, generator=generator
        )
        rand_part = s + torch.copysign(_negative(num_group, device, box_dtype), s)
    return flip, replacement, rand_part


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
    empty_batch: str = "none",
    validate: bool = True,
):
    """The fast builder: the reference's signature and contract, plus ``max_gt`` (a fixed
    padded width for static shapes), ``fix_upstream`` and ``empty_batch`` (see the module
    docstring).

    With ``noise`` it applies that draw exactly as the reference does; otherwise it draws
    from ``generator`` (default: the global RNG) with upstream's distributions, not its
    order. ``validate`` as in :func:`dnspec.contract.reference.get_contrastive_denoising_training_group`
    (its check reads one device value; pass False under torch.compile or CUDA graphs)."""
    if validate:
        from dnspec.contract.validation import validate_cdn_inputs

        validate_cdn_inputs(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
        )
    if noise is not None:
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
            empty_batch=empty_batch,
        )
    shape = _shape(targets, num_denoising, max_gt)
    if shape is None:
        return _empty_batch_output(
            targets, num_classes, num_queries, class_embed, num_denoising, box_noise_scale, fix_upstream, empty_batch
        )
    counts, width, num_group = shape
    plan = _plan(targets, counts, width, num_group, max_gt is not None)
    flip, replacement, rand_part = _draw(
        (2 * num_group, sum(counts)),
        num_classes,
        num_group,
        label_noise_ratio,
        box_noise_scale,
        targets[0]["labels"].device,
        targets[0]["boxes"].dtype,
        generator,
        fix_upstream,
    )
    return _apply(
        targets,
        counts,
        num_classes,
        num_queries,
        class_embed,
        width,
        num_group,
        box_noise_scale,
        flip,
        replacement,
        rand_part,
        fix_upstream,
        plan,
    )


def embedding_floor(
    targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0, **_
):
    """Not a builder: only the class-embedding lookup of the output's size [bs, N, D], the
    floor any implementation pays (benchmarks time the builders against it)."""
    counts = [len(t["labels"]) for t in targets]
    largest = max(counts, default=0)
    if num_denoising <= 0 or largest == 0:
        return NO_OUTPUT
    rows = 2 * largest * max(1, num_denoising // largest)
    labels = torch.full((len(counts), rows), num_classes, dtype=torch.int32, device=targets[0]["labels"].device)
    return class_embed(labels), None, None, None


def builtin_implementations():
    """Built-in SPEC names: ``fast`` (upstream-compatible), ``fast-fixed`` (the advisories
    fixed), and ``fast-ddp`` / ``fast-fixed-ddp`` (the same, with the dummy group for
    all-empty batches)."""
    from dnspec import __version__
    from dnspec.implementations.specs import Implementation

    def loader(name, description, fix_upstream=False, empty_batch="none"):
        def load():
            fn = get_contrastive_denoising_training_group
            keywords = {
                **({"fix_upstream": True} if fix_upstream else {}),
                **({"empty_batch": empty_batch} if empty_batch != "none" else {}),
            }
            if keywords:
                fn = functools.partial(fn, **keywords)
            return Implementation(
                name=name,
                fn=fn,
                accepts_noise=True,
                fixes_advisories=fix_upstream,
                version=f"dnspec {__version__}",
                description=description,
            )

        return load

    ddp = "; an all-empty batch gets RT-DETRv2's dummy group (DDP-safe)"
    return {
        "fast": loader("fast", "vectorised builder, bit-identical to the reference under one draw"),
        "fast-fixed": loader("fast-fixed", "vectorised builder with the upstream advisories fixed", fix_upstream=True),
        "fast-ddp": loader(
            "fast-ddp", "vectorised builder, bit-identical to the reference under one draw" + ddp, empty_batch="dummy"
        ),
        "fast-fixed-ddp": loader(
            "fast-fixed-ddp",
            "vectorised builder with the upstream advisories fixed" + ddp,
            fix_upstream=True,
            empty_batch="dummy",
        ),
    }
