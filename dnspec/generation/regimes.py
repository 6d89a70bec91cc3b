"""Input regimes: the named corners of the input space where real CDN builders are known
to behave differently from RT-DETR, and the common regime that is none of them.

A regime is a predicate on one call (:class:`~dnspec.generation.cases.CdnCase`). ``dnspec verify``
checks every contract property on cases generated in the common regime and in each
edge regime on its own (:func:`dnspec.generation.strategies.regime_cases` makes them), so that a
bug living in one corner (a crash at ``box_noise_scale == 0``, say) is found there and
nowhere else, and the rest of the contract is still judged on the other regimes.

Where a failure happened is read off the call that failed, by :func:`regimes_of`: a
check that forces a configuration (the noise-free differential check calls with
``box_noise_scale == 0``) fails in the regimes of that call, not of the generated case.
A divergence's regimes are then the smallest regime sets its failures share
(:func:`minimal_regime_sets`): a crash seen at scale 0 alone and at scale 0 with one
image is "box_noise_scale == 0".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

COMMON = "common"
TINY_SIDE = 1e-3  # a box side at or below this is "tiny"


@dataclass(frozen=True)
class Regime:
    """One edge of the input space: ``name`` (used by ``--regime``, test ids and reports),
    ``title`` (how a report says it), ``why`` (what real implementations do there) and
    ``holds(case)``, whether a call is in it."""

    name: str
    title: str
    why: str
    holds: Callable


def _box_columns(case):
    import torch

    boxes = [t["boxes"] for t in case.targets if len(t["boxes"])]
    if not boxes:
        return None
    return torch.cat([b.detach().double().cpu() for b in boxes]).unbind(-1)


def _touches_border(case) -> bool:
    columns = _box_columns(case)
    if columns is None:
        return False
    cx, cy, w, h = columns
    return bool(((cx - w / 2 <= 0) | (cy - h / 2 <= 0) | (cx + w / 2 >= 1) | (cy + h / 2 >= 1)).any())


def _has_tiny_box(case) -> bool:
    columns = _box_columns(case)
    return columns is not None and bool(((columns[2] <= TINY_SIDE) | (columns[3] <= TINY_SIDE)).any())


def _has_full_image_box(case) -> bool:
    columns = _box_columns(case)
    return columns is not None and bool(((columns[2] >= 1) & (columns[3] >= 1)).any())


def _max_gt(case) -> int:
    return max(case.counts, default=0)


REGIMES: tuple[Regime, ...] = (
    Regime(
        "box_noise_scale_0",
        "box_noise_scale == 0",
        "RT-DETR returns box-space boxes here; RT-DETRv2, D-FINE and DEIM forks assign their box output only "
        "under `if box_noise_scale > 0` and raise UnboundLocalError",
        lambda case: case.box_noise_scale == 0,
    ),
    Regime(
        "label_noise_ratio_0",
        "label_noise_ratio == 0",
        "no label noise: every real row keeps its label (`ratio or default` idioms turn 0 into noise)",
        lambda case: case.label_noise_ratio == 0,
    ),
    Regime(
        "box_noise_scale_above_1",
        "box_noise_scale > 1",
        "negatives move by up to 2 * scale * side/2: corners cross and hit the clip more often",
        lambda case: case.box_noise_scale > 1,
    ),
    Regime(
        "all_images_empty",
        "no image has a box",
        "RT-DETR returns four Nones; forks return a dummy group, an empty group or meta only (the empty-batch conventions)",
        lambda case: case.num_denoising > 0 and _max_gt(case) == 0,
    ),
    Regime(
        "some_image_empty",
        "some image has no box",
        "padding rows only for that image; per-image loops and splits meet a zero count",
        lambda case: _max_gt(case) > 0 and 0 in case.counts,
    ),
    Regime(
        "batch_of_one",
        "batch of one image",
        "bs == 1: squeezes and broadcasting that hide a batch axis",
        lambda case: case.batch_size == 1,
    ),
    Regime(
        "max_gt_above_num_denoising",
        "max_gt > num_denoising (G falls to 1)",
        "num_denoising // max_gt is 0 and is floored to 1 group; ultralytics subsamples boxes here",
        lambda case: case.num_denoising > 0 and _max_gt(case) > case.num_denoising,
    ),
    Regime(
        "num_denoising_non_positive",
        "num_denoising <= 0",
        "denoising off (negative values are valid input): RT-DETR returns four Nones",
        lambda case: case.num_denoising <= 0,
    ),
    Regime(
        "one_class",
        "num_classes == 1",
        "a replacement label can only be the label itself; randint(0, 1)",
        lambda case: case.num_classes == 1,
    ),
    Regime(
        "no_object_queries",
        "num_queries == 0",
        "the attention mask has only denoising rows; dn_num_split == [N, 0]",
        lambda case: case.num_queries == 0,
    ),
    Regime(
        "border_box",
        "a box touches the image border",
        "a corner at 0 or 1: the clip pins noised corners there",
        _touches_border,
    ),
    Regime(
        "tiny_box",
        f"a box side <= {TINY_SIDE:g}",
        "side/2 * scale is tiny: noise below float precision, logits near the clamp",
        _has_tiny_box,
    ),
    Regime(
        "full_image_box",
        "a box covers the whole image",
        "w = h = 1: every corner on the border, the side clamp 1 - 1e-5 of inverse_sigmoid",
        _has_full_image_box,
    ),
)

BY_NAME: dict[str, Regime] = {regime.name: regime for regime in REGIMES}
NAMES: tuple[str, ...] = (COMMON, *BY_NAME)


def regimes_of(case) -> frozenset[str]:
    """The edge regimes a call is in (empty: the common regime)."""
    return frozenset(regime.name for regime in REGIMES if regime.holds(case))


def title(name: str) -> str:
    """How a report names a regime: ``'box_noise_scale == 0'``, ``'the common regime'``."""
    return "the common regime" if name == COMMON else BY_NAME[name].title


def describe_set(regimes) -> str:
    """A regime set in words: ``'box_noise_scale == 0 and batch of one image'``; the empty
    set is the common regime."""
    names = [name for name in BY_NAME if name in regimes]
    return " and ".join(BY_NAME[name].title for name in names) if names else title(COMMON)


def minimal_regime_sets(sets) -> list[frozenset[str]]:
    """The smallest of the given regime sets: those no other given set is a proper subset
    of, each once, in a stable order (fewest regimes first, then registry order). Where a
    failure happened in the common regime (the empty set), that is the only one."""
    distinct = set(frozenset(s) for s in sets)
    minimal = [s for s in distinct if not any(other < s for other in distinct)]
    order = {name: i for i, name in enumerate(BY_NAME)}
    return sorted(minimal, key=lambda s: (len(s), sorted(order[n] for n in s)))
