"""Hypothesis strategies for CDN inputs: small composable pieces, each saying what it
generates and why.

Everything shrinks toward the simplest failing input: box counts toward 0, batches
toward one image, configurations toward num_queries 0, no noise, one class, and boxes
toward a small box in the top-left corner (:func:`cdn_cases`); a regime's cases
(:func:`regime_cases`, what ``dnspec verify`` generates) toward the regime's smallest batch
of one SIMPLE_BOX an image. The edge cases the builder has to survive
are weighted in on purpose: empty images and all-empty batches, boxes touching each
border, full-image boxes, tiny boxes (side 1e-4), many identical boxes, and images with
more boxes than ``num_denoising`` (so G falls to 1 and N = 2 * max_gt).
"""

from __future__ import annotations

import functools
import random

import torch
from hypothesis import assume
from hypothesis import strategies as st

from dnspec.generation import regimes
from dnspec.generation.cases import CdnCase

TINY_SIDE = 1e-4

# --- single numbers -------------------------------------------------------------------


# Strategies are built once and reused (functools.cache): a strategy object is validated
# on its first draw, and building and validating a fresh one for every box cost more than
# drawing from it. The distributions are the same; a derandomized run's sequence of cases
# is not (Hypothesis' mutator picks among the spans it has seen).


@functools.cache
def box_sides() -> st.SearchStrategy[float]:
    """A box side in (0, 1]: mostly ordinary, sometimes tiny (1e-4 .. 1e-3), sometimes
    the full image (1.0). Shrinks toward the tiny end, the classic overflow/underflow case."""
    return st.one_of(
        st.floats(TINY_SIDE, 1e-3),
        st.floats(1e-3, 1.0),
        st.just(1.0),
    )


@functools.cache
def placements() -> st.SearchStrategy[float]:
    """Where a box sits along an axis, as a fraction of the free room: 0.0 touches the
    low border (corner exactly 0), 1.0 the high border (corner exactly 1)."""
    return st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))


@st.composite
def boxes_cxcywh(draw) -> list[float]:
    """One valid normalized box (cx, cy, w, h): w, h > 0 and corners inside [0, 1] (up
    to the rounding of the box dtype)."""
    w, h = draw(box_sides()), draw(box_sides())
    px, py = draw(placements()), draw(placements())
    return [w / 2 + px * (1 - w), h / 2 + py * (1 - h), w, h]


@functools.cache
def box_counts(max_boxes: int) -> st.SearchStrategy[int]:
    """Boxes in one image: 0 often (empty images are common in detection batches)."""
    return st.one_of(st.just(0), st.integers(1, max(1, max_boxes)))


# --- images and batches ---------------------------------------------------------------


@st.composite
def image_targets(draw, num_classes: int, max_boxes: int = 6, dtype=torch.float32, device="cpu") -> dict:
    """One image's target: ``labels`` int64 [n] in [0, num_classes), ``boxes`` [n, 4].

    Either every box drawn on its own (edge shapes reachable), or one box repeated n
    times (many identical boxes: ties in any sort or dedup an implementation does)."""
    n = draw(box_counts(max_boxes))
    box, label = _one_box(), st.integers(0, num_classes - 1)
    if n and draw(st.booleans()):
        boxes = [draw(box)] * n
        labels = [draw(label)] * n
    else:
        boxes = [draw(box) for _ in range(n)]
        labels = [draw(label) for _ in range(n)]
    return {
        "labels": torch.tensor(labels, dtype=torch.int64, device=device),
        "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4).to(device=device, dtype=dtype),
    }


@st.composite
def crowded_image_targets(
    draw, num_classes: int, min_boxes: int, max_boxes: int, dtype=torch.float32, device="cpu"
) -> dict:
    """An image with many boxes (min_boxes..max_boxes), generated from a drawn seed
    rather than box by box, so that crowded images stay cheap to generate and shrink."""
    n = draw(st.integers(min_boxes, max_boxes))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 0.5 + TINY_SIDE
    centre = wh / 2 + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (1 - wh)
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    return {"labels": labels.to(device), "boxes": torch.cat([centre, wh], 1).to(device=device, dtype=dtype)}


_one_box = functools.cache(boxes_cxcywh)
_image_targets = functools.lru_cache(maxsize=4096)(image_targets)
_crowded_image_targets = functools.lru_cache(maxsize=4096)(crowded_image_targets)


# --- configurations -------------------------------------------------------------------


@functools.cache
def noise_ratios() -> st.SearchStrategy[float]:
    """label_noise_ratio in [0, 1], with both ends (0: no label noise; 1: the most)."""
    return st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))


@functools.cache
def noise_scales() -> st.SearchStrategy[float]:
    """box_noise_scale in [0, 2], with 0 (no box noise, box-space output upstream)."""
    return st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 2.0))


@functools.cache
def denoising_counts() -> st.SearchStrategy[int]:
    """num_denoising in 0..200; 0 must give (None,)*4 (Hypothesis reaches the bounds
    of an integer range on its own, so 0 needs no extra weight)."""
    return st.integers(0, 200)


@st.composite
def cdn_cases(
    draw,
    max_batch_size: int = 16,
    max_boxes: int = 6,
    dtype=torch.float32,
    device="cpu",
    label_noise_ratio: st.SearchStrategy[float] | None = None,
    box_noise_scale: st.SearchStrategy[float] | None = None,
) -> CdnCase:
    """A whole call: ragged batch of 1..max_batch_size images plus a configuration.

    With probability ~1/4 the batch is "crowded": num_denoising is small (1..12) and at
    least one image has more boxes than it, so num_group falls to 1."""
    num_classes = draw(st.integers(1, 100))
    num_denoising = draw(denoising_counts())
    batch_size = draw(st.integers(1, max_batch_size))
    image = _image_targets(num_classes, max_boxes, dtype, device)
    images = [draw(image) for _ in range(batch_size)]
    config = dict(
        num_queries=draw(st.integers(0, 300)),
        label_noise_ratio=draw(label_noise_ratio if label_noise_ratio is not None else noise_ratios()),
        box_noise_scale=draw(box_noise_scale if box_noise_scale is not None else noise_scales()),
        embed_dim=draw(st.integers(1, 16)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    # drawn last, so that shrinking it away leaves the rest of the case as it was
    if draw(st.integers(0, 3)) == 3:
        num_denoising = draw(st.integers(1, 12))
        where = draw(st.integers(0, batch_size - 1))
        images[where] = draw(_crowded_image_targets(num_classes, num_denoising + 1, num_denoising + 4, dtype, device))
    return CdnCase(
        targets=tuple(images),
        num_classes=num_classes,
        num_denoising=num_denoising,
        dtype=dtype,
        device=device,
        **config,
    )


def noiseless_cases(**kwargs) -> st.SearchStrategy[CdnCase]:
    """Cases with label_noise_ratio == 0 and box_noise_scale == 0: fully deterministic calls."""
    return cdn_cases(label_noise_ratio=st.just(0.0), box_noise_scale=st.just(0.0), **kwargs)


def noisy_box_cases(**kwargs) -> st.SearchStrategy[CdnCase]:
    """Cases with box noise on (scale in (0, 2]): the box bound checks' domain."""
    return cdn_cases(box_noise_scale=st.one_of(st.just(1.0), st.just(2.0), st.floats(1e-3, 2.0)), **kwargs)


# --- one regime at a time ----------------------------------------------------------------
#
# The common regime avoids every edge of dnspec.generation.regimes on purpose (boxes strictly inside
# the image, neither tiny nor full, every image non-empty, two or more images, G >= 1 by
# division, two or more classes, object queries, both noises on with box_noise_scale <= 1);
# an edge regime's cases move exactly one knob onto its edge. A bug that lives on one
# edge then fails in that regime and nowhere else.

COMMON_SIDES = (2e-3, 0.9)  # box sides well clear of "tiny" (<= 1e-3) and of the full image
COMMON_PLACEMENT = (0.02, 0.98)  # fraction of the free room: never a corner on the border


@st.composite
def _inner_box(draw, tiny_axis: int | None = None) -> list[float]:
    """A box strictly inside the image; with ``tiny_axis`` (2: width, 3: height) that side
    is tiny (1e-4 .. 1e-3)."""
    sides = [draw(st.floats(*COMMON_SIDES)), draw(st.floats(*COMMON_SIDES))]
    if tiny_axis is not None:  # below the bound by more than bfloat16's rounding, so it stays tiny in every dtype
        sides[tiny_axis - 2] = draw(st.floats(TINY_SIDE, regimes.TINY_SIDE * (1 - 2**-7)))
    w, h = sides
    px, py = draw(st.floats(*COMMON_PLACEMENT)), draw(st.floats(*COMMON_PLACEMENT))
    return [w / 2 + px * (1 - w), h / 2 + py * (1 - h), w, h]


@st.composite
def _border_box(draw, dtype=torch.float32) -> list[float]:
    """A box with one corner on the border (placement 0 or 1 on one axis), inside otherwise.
    On the high border the side on that axis is a multiple of 2^(1 - p), p the dtype's
    significand bits, so 1 - side/2 is exact in the dtype and the corner stays at 1."""
    box = draw(_inner_boxes(None))
    axis = draw(st.integers(0, 1))
    if draw(st.booleans()):
        box[axis] = box[axis + 2] / 2
    else:
        step = torch.finfo(dtype).eps  # 2^(1 - p)
        side = max(step, round(box[axis + 2] / step) * step)
        box[axis + 2], box[axis] = side, 1 - side / 2
    return box


def _image(boxes: list[list[float]], labels: list[int], dtype, device) -> dict:
    return {
        "labels": torch.tensor(labels, dtype=torch.int64, device=device),
        "boxes": torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4).to(device=device, dtype=dtype),
    }


# The regimes' inner boxes are built from drawn codes, not drawn coordinate by coordinate
# (four floats and their branches a box were three quarters of a verify run's own time):
# each box is one drawn integer. The small codes are a table of simple boxes (sides 0.5,
# 0.25, 0.75 and both bounds, placements middle, low and high: Hypothesis' integers draw
# them about one time in eight, as its floats favour simple values and bounds); the others
# seed Python's Random (microseconds; the same stream on every platform and Python
# version, and the printed case holds the boxes anyway), which makes sides uniform or
# log-uniform in COMMON_SIDES and placements uniform in COMMON_PLACEMENT, each with a small
# chance of sitting on its bound. An image's codes are a Hypothesis list, so the shrinker
# can delete any box, not only the last, and lowers each remaining code towards 0,
# SIMPLE_BOX. A crowded image (more boxes than num_denoising) is built from one drawn seed:
# its boxes matter by their count.
SIMPLE_BOX = (0.5, 0.5, 0.5, 0.5)  # box code 0: what a box shrinks to
_BOUND_CHANCE = 1 / 16
_MIN_GAP = 4e-3  # corner to border, beyond bfloat16's rounding of a corner near 1 (< 3e-3)


def _inner_box_from(rand) -> tuple[list[float], float]:
    """(one inner box cxcywh, a label draw in [0, 1)) from nine numbers of ``rand``."""
    lo, hi = COMMON_SIDES
    sides = []
    for _axis in range(2):
        u, how = rand(), rand()
        if how < _BOUND_CHANCE:
            sides.append(lo)
        elif how > 1 - _BOUND_CHANCE:
            sides.append(hi)
        else:
            sides.append(lo + u * (hi - lo) if how < 0.5 else lo * (hi / lo) ** u)
    centre = []
    for side in sides:
        u, how = rand(), rand()
        low = max(COMMON_PLACEMENT[0], _MIN_GAP / (1 - side))  # the corner stays off the border in every dtype
        high = 1 - low
        place = low if how < _BOUND_CHANCE / 2 else high if how > 1 - _BOUND_CHANCE / 2 else low + u * (high - low)
        centre.append(side / 2 + place * (1 - side))
    return centre + sides, rand()


def _simple_boxes() -> list[tuple[list[float], float]]:
    """The boxes of the small codes: every side in (0.5, 0.25, 0.75, hi, lo) and every
    placement in (middle, low, high), code 0 being SIMPLE_BOX and the codes after it varying
    the width first, then the height, then the placements (the shrinker, which lowers a
    code, lands on the simplest box that still fails)."""
    lo, hi = COMMON_SIDES
    sides = (0.5, 0.25, 0.75, hi, lo)
    out = []
    for py in range(3):
        for px in range(3):
            for h in sides:
                for w in sides:
                    centre = []
                    for side, where in ((w, px), (h, py)):
                        low = max(COMMON_PLACEMENT[0], _MIN_GAP / (1 - side))
                        place = (0.5, low, 1 - low)[where]
                        centre.append(side / 2 + place * (1 - side))
                    out.append((centre + [w, h], (len(out) * 0.6180339887498949) % 1.0))
    return out


_SIMPLE_BOXES = _simple_boxes()
assert _SIMPLE_BOXES[0][0] == list(SIMPLE_BOX)


def inner_box(code: int) -> tuple[list[float], float]:
    """The inner box cxcywh (and a label draw in [0, 1)) of a box code: the small codes are
    the simple boxes of :func:`_simple_boxes` (code 0: SIMPLE_BOX, label 0), the others
    are made by Python's Random seeded with the code."""
    if code < len(_SIMPLE_BOXES):
        box, label_draw = _SIMPLE_BOXES[code]
        return list(box), label_draw
    return _inner_box_from(random.Random(code).random)


def _labels(draws, num_classes: int) -> list[int]:
    return [min(int(u * num_classes), num_classes - 1) for u in draws]


@functools.cache
def _box_code_lists(max_boxes: int) -> st.SearchStrategy[list[int]]:
    return st.lists(_BOX_CODES, min_size=1, max_size=max(1, max_boxes))


def _common_image(draw, num_classes: int, max_boxes: int, dtype, device) -> dict:
    """1..max_boxes inner boxes, one drawn code each; sometimes the first box repeated in
    every slot (ties). Shrinks towards one SIMPLE_BOX: the tie flag comes after the codes,
    so clearing it keeps them, and the list lets the shrinker delete any box."""
    codes = draw(_box_code_lists(max_boxes))
    if len(codes) > 1 and draw(st.booleans()):
        codes = [codes[0]] * len(codes)
    boxes, label_draws = zip(*(inner_box(code) for code in codes), strict=True)
    return _image(list(boxes), _labels(label_draws, num_classes), dtype, device)


def _crowded_image(draw, num_classes: int, min_boxes: int, max_boxes: int, dtype, device) -> dict:
    """min_boxes..max_boxes inner boxes from one drawn seed (box j from the seed's stream, so
    a smaller count keeps the first boxes)."""
    n = draw(st.integers(min_boxes, max_boxes))
    rand = random.Random(draw(_BOX_CODES)).random
    boxes, label_draws = zip(*(_inner_box_from(rand) for _ in range(n)), strict=True)
    return _image(list(boxes), _labels(label_draws, num_classes), dtype, device)


def _empty_image(dtype, device) -> dict:
    return _image([], [], dtype, device)


# strategies built once (constructing one per draw costs more than the draw)
_BOX_CODES = st.integers(0, 2**32 - 1)
_CLASSES = st.integers(2, 100)
_SEEDS = st.integers(0, 2**32 - 1)
_QUERIES = st.integers(1, 300)
_EMBED_DIMS = st.integers(1, 16)
_RATIOS = st.one_of(st.just(0.5), st.floats(1e-3, 1.0))
_SCALES = st.one_of(st.just(1.0), st.floats(1e-3, 1.0))
_SCALES_ABOVE_1 = st.one_of(st.just(2.0), st.floats(1.0, 3.0, exclude_min=True))
_NON_POSITIVE = st.integers(-100, 0)
_SMALL_DENOISING = st.integers(1, 12)
_TINY_AXES = st.sampled_from([2, 3])
_inner_boxes = functools.cache(lambda tiny_axis: _inner_box(tiny_axis=tiny_axis))
_border_boxes = functools.cache(_border_box)


@st.composite
def regime_cases(
    draw, regime: str = regimes.COMMON, max_batch_size: int = 16, max_boxes: int = 6, dtype=torch.float32, device="cpu"
) -> CdnCase:
    """A whole call in ``regime`` (a name of :data:`dnspec.generation.regimes.NAMES`): the common
    regime's knobs, with the one knob of an edge regime moved onto its edge. Every case
    is in its regime and in no other edge regime (a full-image box also touches the
    border), which :func:`dnspec.generation.regimes.regimes_of` confirms: the few draws that the
    dtype's rounding pushes onto another edge are filtered out.

    Drawn: the knobs, the batch size, one code per box (:func:`inner_box`), and the one
    edge box of the box regimes coordinate by coordinate; so a case costs two draws a box
    instead of a dozen, and shrinks towards its smallest batch (two images, one in
    ``batch_of_one``) of one SIMPLE_BOX each."""
    if regime not in regimes.NAMES:
        raise ValueError(f"regime: unknown regime {regime!r}; known: {', '.join(regimes.NAMES)}")
    num_classes = 1 if regime == "one_class" else draw(_CLASSES)
    batch_size = 1 if regime == "batch_of_one" else draw(st.integers(2, max(2, max_batch_size)))
    empty = set(range(batch_size)) if regime == "all_images_empty" else set()
    if regime == "some_image_empty":
        empty.add(draw(st.integers(0, batch_size - 1)))
    images = [
        _empty_image(dtype, device) if i in empty else _common_image(draw, num_classes, max_boxes, dtype, device)
        for i in range(batch_size)
    ]
    counts = [len(image["labels"]) for image in images]
    if regime == "max_gt_above_num_denoising":
        num_denoising = draw(_SMALL_DENOISING)
        where = draw(st.integers(0, batch_size - 1))
        images[where] = _crowded_image(draw, num_classes, num_denoising + 1, num_denoising + 4, dtype, device)
    elif regime == "num_denoising_non_positive":
        num_denoising = draw(_NON_POSITIVE)
    else:
        num_denoising = draw(st.integers(max(1, max(counts)), 200))
    if regime in ("border_box", "tiny_box", "full_image_box"):
        where = draw(st.integers(0, batch_size - 1))
        slot = draw(st.integers(0, counts[where] - 1))
        if regime == "border_box":
            box = draw(_border_boxes(dtype))
        elif regime == "tiny_box":
            box = draw(_inner_boxes(draw(_TINY_AXES)))
        else:
            box = [0.5, 0.5, 1.0, 1.0]
        boxes = images[where]["boxes"].clone()
        boxes[slot] = torch.tensor(box, dtype=torch.float64).to(dtype)
        images[where] = {"labels": images[where]["labels"], "boxes": boxes}
    ratio = 0.0 if regime == "label_noise_ratio_0" else draw(_RATIOS)
    if regime == "box_noise_scale_0":
        scale = 0.0
    elif regime == "box_noise_scale_above_1":
        scale = draw(_SCALES_ABOVE_1)
    else:
        scale = draw(_SCALES)
    case = CdnCase(
        targets=tuple(images),
        num_classes=num_classes,
        num_denoising=num_denoising,
        num_queries=0 if regime == "no_object_queries" else draw(_QUERIES),
        label_noise_ratio=ratio,
        box_noise_scale=scale,
        embed_dim=draw(_EMBED_DIMS),
        seed=draw(_SEEDS),
        dtype=dtype,
        device=device,
    )
    expected = REGIME_SETS[regime]
    assume(regimes.regimes_of(case) == expected)  # the dtype's rounding put a box on an edge
    return case


# the regimes a case of each regime's strategy is in (a full-image box touches the border)
REGIME_SETS = {
    regimes.COMMON: frozenset(),
    **{name: frozenset({name}) for name in regimes.BY_NAME},
    "full_image_box": frozenset({"full_image_box", "border_box"}),
}


def pinned_cases(regime: str, dtype=torch.float32, device="cpu") -> list[CdnCase]:
    """The canonical small case of each regime, pinned with ``@example`` so every run
    checks it first (they catch most bugs at once; Hypothesis does not shrink them)."""

    def box(*b):
        return torch.tensor([list(b)], dtype=dtype, device=device)

    empty = {
        "labels": torch.zeros(0, dtype=torch.int64, device=device),
        "boxes": torch.zeros(0, 4, dtype=dtype, device=device),
    }
    one = {"labels": torch.tensor([1], device=device), "boxes": box(0.5, 0.5, 0.2, 0.2)}
    two = {
        "labels": torch.tensor([0, 2], device=device),
        "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.6, 0.5, 0.3, 0.2]], dtype=dtype, device=device),
    }
    common = dict(num_classes=3, num_queries=4, embed_dim=4, seed=1, dtype=dtype, device=device, num_denoising=6)
    crowded = {
        "labels": torch.arange(5, device=device) % 3,
        "boxes": torch.tensor([[0.4, 0.5, 0.3, 0.3]] * 5, dtype=dtype, device=device),
    }
    by_regime = {
        regimes.COMMON: CdnCase(targets=(one, two), note="common: two images", **common),
        "box_noise_scale_0": CdnCase(targets=(one, two), box_noise_scale=0.0, note="box_noise_scale 0", **common),
        "label_noise_ratio_0": CdnCase(targets=(one, two), label_noise_ratio=0.0, note="label_noise_ratio 0", **common),
        "box_noise_scale_above_1": CdnCase(targets=(one, two), box_noise_scale=2.0, note="box_noise_scale 2", **common),
        "all_images_empty": CdnCase(targets=(empty, empty), note="all-empty batch", **common),
        "some_image_empty": CdnCase(targets=(one, empty), note="one image with 0 boxes", **common),
        "batch_of_one": CdnCase(targets=(two,), note="batch of one", **common),
        "max_gt_above_num_denoising": CdnCase(
            targets=(crowded, one), note="max_gt > num_denoising", **{**common, "num_denoising": 3}
        ),
        "num_denoising_non_positive": CdnCase(
            targets=(one, two), note="num_denoising -1", **{**common, "num_denoising": -1}
        ),
        "one_class": CdnCase(
            targets=(
                dict(one, labels=torch.tensor([0], device=device)),
                dict(two, labels=torch.tensor([0, 0], device=device)),
            ),
            note="num_classes 1",
            **{**common, "num_classes": 1},
        ),
        "no_object_queries": CdnCase(targets=(one, two), note="num_queries 0", **{**common, "num_queries": 0}),
        "border_box": CdnCase(
            targets=(one, {"labels": torch.tensor([0], device=device), "boxes": box(0.05, 0.5, 0.1, 0.1)}),
            note="box on the left border",
            **common,
        ),
        "tiny_box": CdnCase(
            targets=(one, {"labels": torch.tensor([0], device=device), "boxes": box(0.5, 0.5, 5e-4, 0.2)}),
            note="tiny box",
            **common,
        ),
        "full_image_box": CdnCase(
            targets=(one, {"labels": torch.tensor([0], device=device), "boxes": box(0.5, 0.5, 1.0, 1.0)}),
            note="full-image box",
            **common,
        ),
    }
    case = by_regime[regime]
    return [case] if regimes.regimes_of(case) == REGIME_SETS[regime] else []


# --- edge-case buckets, for event() and for the reachability tests ----------------------


def edge_case_buckets(case: CdnCase) -> list[str]:
    """Names of the edge-case buckets this case falls in (shown by
    ``--hypothesis-show-statistics``; tests prove each is reached)."""
    counts = case.counts
    max_gt = max(counts, default=0)
    buckets = []
    if max_gt == 0:
        buckets.append("all images empty")
    elif 0 in counts:
        buckets.append("some image empty")
    if case.num_denoising <= 0:
        buckets.append("num_denoising == 0")
    elif max_gt > case.num_denoising:
        buckets.append("max_gt > num_denoising (one group)")
    elif max_gt and case.num_denoising // max_gt == 1:
        buckets.append("exactly one group")
    if case.batch_size == 1:
        buckets.append("batch of one")
    if case.label_noise_ratio == 0:
        buckets.append("no label noise")
    if case.label_noise_ratio == 1:
        buckets.append("label_noise_ratio == 1")
    if case.box_noise_scale == 0:
        buckets.append("no box noise")
    all_boxes = torch.cat([t["boxes"].double().cpu() for t in case.targets]) if max_gt else torch.zeros(0, 4)
    if len(all_boxes):
        cx, cy, w, h = all_boxes.unbind(-1)
        if bool(((cx - w / 2 <= 0) | (cy - h / 2 <= 0) | (cx + w / 2 >= 1) | (cy + h / 2 >= 1)).any()):
            buckets.append("box touching a border")
        if bool(((w >= 1) & (h >= 1)).any()):
            buckets.append("full-image box")
        if bool(((w <= 1e-3) | (h <= 1e-3)).any()):
            buckets.append("tiny box")
    for t in case.targets:
        if len(t["boxes"]) > 1 and bool((t["boxes"] == t["boxes"][0]).all()):
            buckets.append("identical boxes")
            break
    return buckets
