"""What a CDN builder returns for an all-empty batch (num_denoising > 0, no image has a
box): the conventions real forks use, how to recognise each, and the dummy group.

RT-DETR returns four Nones there. Under DistributedDataParallel a rank whose local batch
is all-empty then leaves the denoising class embedding out of its graph while the other
ranks use it, and the gradient all-reduce mismatches or hangs (RT-DETR issue #672;
lightly-train hit the same, its PR #446). Forks answer this differently; each answer is a
convention, checked for consistency, never a failure by itself:

``four_nones``   ``(None, None, None, None)``: RT-DETR v1 (and dnspec's reference).
``dummy_group``  one padding query pair per image (max_gt 1, one group, N = 2): padding
                 class, a finite box, no positives (an empty index tensor per image),
                 hidden from the object queries by the mask, ``dn_num_split == [2, Q]``:
                 RT-DETRv2 after its PR #684.
``meta_only``    ``(None, None, None, dn_meta)`` with ``dn_num_group == 0``,
                 ``dn_num_split == [0, Q]`` and ``dn_positive_idx`` None: D-FINE, DEIM
                 (Dome-DETR adds an all-False ``[Q, Q]`` mask in the third place).
``empty_group``  zero-width outputs ``[bs, 0, D]``, ``[bs, 0, 4]``, an all-False ``[Q, Q]``
                 mask, ``dn_num_split == [0, Q]``, ``dn_num_group`` 0 or 1 and an empty
                 index tensor (or None) per image: lightly-train after its PR #446, GTR.

:func:`recognise` names the convention of an output and lists what in it is
inconsistent (a dummy row visible to the object queries, a dummy row listed as a
positive, meta that disagrees with the shapes); an output that is none of them is
``None``.

The other conventions a verdict names (:data:`KINDS`) are the attention mask's layout and
values (:mod:`dnspec.contract.mask_layouts`) and the space of the boxes at box_noise_scale 0
(:func:`dnspec.contract.decode.space_at_scale_0`); each is observed per call, and a builder
that follows two of one kind is inconsistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FOUR_NONES, DUMMY_GROUP, META_ONLY, EMPTY_GROUP = "four_nones", "dummy_group", "meta_only", "empty_group"
RTDETR = FOUR_NONES

TITLES = {
    FOUR_NONES: "four Nones (RT-DETR)",
    DUMMY_GROUP: "a dummy group: one masked padding pair per image (RT-DETRv2 PR #684, DDP-safe)",
    META_ONLY: "meta only: (None, None, None, dn_meta) with no groups (D-FINE, DEIM)",
    EMPTY_GROUP: "an empty group: zero-width outputs and dn_meta (lightly-train PR #446, DDP-safe)",
}


SHORT = {
    FOUR_NONES: "four Nones (RT-DETR)",
    DUMMY_GROUP: "dummy group (RT-DETRv2 #684)",
    META_ONLY: "meta only (D-FINE)",
    EMPTY_GROUP: "empty group (lightly-train #446)",
}


# --- every convention a verdict names ---------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of convention a builder follows, observed per call (``key``, the name the
    checks record it under on the trial): the property a builder that mixes two of them
    fails (``prop``, its check id ``<prop>.<key>.mixed``), how a verdict says what it
    returns (``what``), RT-DETR's value (a verdict names only the others) and the title of
    each value."""

    key: str
    prop: str
    what: str
    rtdetr: str
    titles: object  # value -> title

    def title(self, value: str) -> str:
        return self.titles(value) if callable(self.titles) else self.titles.get(value, value)

    @property
    def mixed_id(self) -> str:
        return f"{self.prop}.{self.key}.mixed"


def _kinds() -> dict[str, Kind]:
    from dnspec.contract import decode, mask_layouts

    kinds = (
        Kind("empty_batch", "structure", "for batches with no boxes it returns", FOUR_NONES, TITLES),
        Kind("mask", "structure", "its attention mask is", mask_layouts.RTDETR, mask_layouts.title),
        Kind("box_space_at_scale_0", "boxes", "at box_noise_scale 0 it returns", decode.BOX, decode.SPACE_TITLES),
    )
    return {kind.key: kind for kind in kinds}


KINDS = _kinds()
LINE_NAMES = {"empty_batch": "empty-batch convention", "mask": "mask convention", "box_space_at_scale_0": "box space"}


def named_conventions(consistent: dict) -> dict:
    """The conventions a verdict records, of those observed consistently (``{key:
    value}``): the empty-batch one always, the others (mask, box space at scale 0) only
    where they are not RT-DETR's, so that RT-DETR's copies keep their records as they were."""
    return {
        key: value
        for key, value in consistent.items()
        if key not in KINDS or key == "empty_batch" or value != KINDS[key].rtdetr
    }


def convention_lines(conventions: dict) -> list[str]:
    """The lines a verdict names the conventions of ``conventions`` (``{key: value}``, as
    observed consistently over a run) with: the empty-batch one always (as before), the
    others only where they are not RT-DETR's."""
    lines = []
    for key, kind in KINDS.items():
        value = conventions.get(key)
        if value is not None and (key == "empty_batch" or value != kind.rtdetr):
            lines.append(f"{LINE_NAMES[key]}: {kind.title(value)}")
    return lines


@dataclass(frozen=True)
class Recognised:
    """The convention of one all-empty-batch output, and what in it is inconsistent
    (``(check id, message)`` pairs; empty: consistent)."""

    convention: str
    problems: tuple[tuple[str, str], ...] = ()


def _is_tensor(value, *shape) -> bool:
    return isinstance(value, torch.Tensor) and tuple(value.shape) == shape


def recognise(outputs, case) -> Recognised | None:
    """The convention of ``outputs`` (four outputs) for the all-empty batch ``case``."""
    query_class, query_bbox, attn_mask, meta = outputs
    if all(o is None for o in outputs):
        return Recognised(FOUR_NONES)
    if not isinstance(meta, dict):
        return None
    bs, q, d = case.batch_size, case.num_queries, case.embed_dim
    if query_class is None and query_bbox is None:
        return Recognised(META_ONLY, tuple(_meta_only_problems(attn_mask, meta, q)))
    if _is_tensor(query_class, bs, 0, d):
        return Recognised(EMPTY_GROUP, tuple(_empty_group_problems(query_bbox, attn_mask, meta, bs, q)))
    if _is_tensor(query_class, bs, 2, d):
        return Recognised(DUMMY_GROUP, tuple(_dummy_group_problems(outputs, case)))
    return None


def _split_problems(meta, rows: int, q: int, groups) -> list[tuple[str, str]]:
    problems = []
    split = meta.get("dn_num_split")
    if split is None or list(split) != [rows, q]:
        problems.append(
            (
                "split",
                f"dn_num_split is {split}, but the outputs have {rows} denoising rows and {q} object "
                f"queries: expected [{rows}, {q}]",
            )
        )
    if meta.get("dn_num_group") not in groups:
        problems.append(
            (
                "groups",
                f"dn_num_group is {meta.get('dn_num_group')}, expected "
                f"{' or '.join(str(g) for g in groups)} for {rows} denoising rows",
            )
        )
    return problems


def _meta_only_problems(attn_mask, meta, q):
    problems = _split_problems(meta, 0, q, (0,))
    if meta.get("dn_positive_idx") is not None:
        problems.append(
            (
                "positives",
                f"dn_positive_idx is {type(meta.get('dn_positive_idx')).__name__}, expected None (no denoising rows)",
            )
        )
    if attn_mask is not None and not (_is_tensor(attn_mask, q, q) and not bool(attn_mask.to(torch.bool).any())):
        problems.append(
            (
                "mask",
                f"the mask is {_shape(attn_mask)}; with no denoising rows it must be None or an "
                f"all-False [{q}, {q}] mask",
            )
        )
    return problems


def _empty_group_problems(query_bbox, attn_mask, meta, bs, q):
    problems = _split_problems(meta, 0, q, (0, 1))
    if not _is_tensor(query_bbox, bs, 0, 4):
        problems.append(
            (
                "shapes",
                f"input_query_bbox is {_shape(query_bbox)}, expected [{bs}, 0, 4] beside the zero-width class queries",
            )
        )
    if not (_is_tensor(attn_mask, q, q) and not bool(attn_mask.to(torch.bool).any())):
        problems.append(
            ("mask", f"the mask is {_shape(attn_mask)}, expected an all-False [{q}, {q}] mask (object queries only)")
        )
    positives = meta.get("dn_positive_idx")
    if positives is not None and (len(positives) != bs or any(len(p) for p in positives)):
        problems.append(("positives", "dn_positive_idx lists rows, but there are no denoising rows"))
    return problems


def _dummy_group_problems(outputs, case):
    """The dummy pair: padding class, finite boxes, hidden from object queries, no
    positives, meta agreeing with N = 2."""
    query_class, query_bbox, attn_mask, meta = outputs
    bs, q = case.batch_size, case.num_queries
    problems = _split_problems(meta, 2, q, (1,))
    padding = case.class_embed().weight.detach()[case.num_classes].to(query_class.device)
    if not bool((query_class.detach() == padding).all()):
        problems.append(
            (
                "padding_class",
                f"a dummy row's class query is not the padding embedding row (class num_classes = {case.num_classes})",
            )
        )
    if not _is_tensor(query_bbox, bs, 2, 4) or not bool(torch.isfinite(query_bbox).all()):
        problems.append(("box", f"the dummy boxes are {_shape(query_bbox)}; expected finite [{bs}, 2, 4]"))
    if not _is_tensor(attn_mask, 2 + q, 2 + q):
        problems.append(("mask", f"the mask is {_shape(attn_mask)}, expected [{2 + q}, {2 + q}]"))
    elif q and not bool(attn_mask.to(torch.bool)[2:, :2].all()):
        problems.append(("visible", "an object query may attend to a dummy row: attn_mask[2:, :2] must be all True"))
    positives = meta.get("dn_positive_idx")
    if positives is None or len(positives) != bs:
        problems.append(
            (
                "positives",
                f"dn_positive_idx is {type(positives).__name__}, expected one (empty) index tensor per image ({bs})",
            )
        )
    elif any(len(p) for p in positives):
        i = next(i for i, p in enumerate(positives) if len(p))
        problems.append(
            (
                "positive_row",
                f"dn_positive_idx[{i}] lists {torch.as_tensor(positives[i]).tolist()}: a "
                "dummy row is a padding row, never a positive",
            )
        )
    return problems


def _shape(value) -> str:
    return f"a tensor of shape {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


# --- the dummy group, for dnspec's own builders ---------------------------------------------


def dummy_group(targets, num_classes: int, num_queries: int, class_embed, logit_space: bool):
    """RT-DETRv2's DDP-safe answer to an all-empty batch: one padding pair per image
    (max_gt 1, one group): class queries ``class_embed(num_classes)``, which keeps the
    embedding in the autograd graph; boxes the padding value (``inverse_sigmoid(0)`` in
    logit space, else 0); the object queries cannot see the pair; no positives."""
    from dnspec.contract.boxes import inverse_sigmoid

    device, dtype = targets[0]["labels"].device, targets[0]["boxes"].dtype
    bs = len(targets)
    labels = torch.full((bs, 2), num_classes, dtype=torch.int32, device=device)
    boxes = torch.zeros((bs, 2, 4), dtype=dtype, device=device)
    if logit_space:
        boxes = inverse_sigmoid(boxes)
    size = 2 + num_queries
    mask = torch.zeros((size, size), dtype=torch.bool, device=device)
    mask[2:, :2] = True
    meta = {
        "dn_positive_idx": tuple(torch.zeros(0, dtype=torch.int64, device=device) for _ in range(bs)),
        "dn_num_group": 1,
        "dn_num_split": [2, num_queries],
    }
    return class_embed(labels), boxes, mask, meta


def answer(convention: str, targets, num_classes: int, num_queries: int, class_embed, box_noise_scale: float):
    """What a builder following ``convention`` returns for an all-empty batch (with
    num_denoising > 0): the oracle of a lineage contract (:mod:`dnspec.contract.lineages`).
    ``empty_group`` is lightly-train's and GTR's answer, which no lineage contract requires."""
    if convention == FOUR_NONES:
        return None, None, None, None
    if convention == META_ONLY:
        return None, None, None, {"dn_positive_idx": None, "dn_num_group": 0, "dn_num_split": [0, num_queries]}
    if convention == DUMMY_GROUP:
        return dummy_group(targets, num_classes, num_queries, class_embed, logit_space=box_noise_scale > 0)
    raise ValueError(f"no lineage contract answers an all-empty batch with {convention!r}")
