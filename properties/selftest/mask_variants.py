"""Fork-shaped variants for the mask layouts and the box space at box_noise_scale 0: the
reference with the one change a fork makes (a mask for ``nn.MultiheadAttention`` or
``scaled_dot_product_attention``, an additive float mask, logits at scale 0), and broken
ones with one bug each in that form.

``CORRECT`` maps a name to ``(Implementation, mask convention or None, box space at scale 0
or None)``: each conforms and its verdict names the convention. ``BROKEN`` maps a name to
``(Implementation, check id)``: the divergence each must get (properties/test_mask_layouts.py,
properties/test_output_space.py).
"""

from __future__ import annotations

import torch

from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.implementations.specs import Implementation

from .broken_variants import _copy, _wraps_reference

HEADS = 4


def _size(outputs) -> int:
    return outputs[2].shape[-1]


def _num_dn(call) -> int:
    max_gt = max(len(t["labels"]) for t in call["targets"])
    return 2 * max_gt * max(1, call["num_denoising"] // max_gt)


def _per_head(blocked: torch.Tensor, bs: int) -> torch.Tensor:
    """[bs*HEADS, T, T] as nn.MultiheadAttention takes it: slice b*HEADS + h."""
    return blocked[None].repeat(bs * HEADS, 1, 1)


def _additive(blocked: torch.Tensor, dtype: torch.dtype, value: float | None = None) -> torch.Tensor:
    """0 where a query may attend, ``value`` (default: the dtype's most negative) where not."""
    fill = torch.finfo(dtype).min if value is None else value
    return torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill(blocked, fill)


# --- correct forks ---------------------------------------------------------------------------


@_wraps_reference
def mha_mask(outputs, call):
    """The mask expanded per head for nn.MultiheadAttention: [bs*heads, T, T], True = blocked."""
    if outputs[0] is None:
        return outputs
    return outputs[0], outputs[1], _per_head(outputs[2], len(call["targets"])), outputs[3]


@_wraps_reference
def sdpa_mask(outputs, call):
    """The mask as scaled_dot_product_attention takes it: [bs, 1, T, T], True = may attend."""
    if outputs[0] is None:
        return outputs
    allowed = ~outputs[2]
    return outputs[0], outputs[1], allowed.expand(len(call["targets"]), 1, -1, -1).contiguous(), outputs[3]


@_wraps_reference
def additive_mask(outputs, call):
    """An additive float mask [T, T]: 0 / -inf, in the class queries' dtype."""
    if outputs[0] is None:
        return outputs
    return outputs[0], outputs[1], _additive(outputs[2], outputs[0].dtype, float("-inf")), outputs[3]


@_wraps_reference
def additive_heads_mask(outputs, call):
    """An additive float mask per head for SDPA: [bs, heads, T, T], 0 / finfo.min."""
    if outputs[0] is None:
        return outputs
    bs, size = len(call["targets"]), _size(outputs)
    mask = _additive(outputs[2], torch.float32).expand(bs, HEADS, size, size).contiguous()
    return outputs[0], outputs[1], mask, outputs[3]


# --- broken forks, one bug each ---------------------------------------------------------------


@_wraps_reference
def mha_head_leaks_group(outputs, call):
    """[bs*heads, T, T] masks, but the last head's slice lets dn group 1 see group 0."""
    if outputs[0] is None:
        return outputs
    mask = _per_head(outputs[2], len(call["targets"]))
    width = 2 * max(len(t["labels"]) for t in call["targets"])  # one group's rows
    if _num_dn(call) >= 2 * width:
        mask[-1, width : 2 * width, :width] = False  # BUG: one head slice leaks a group
    return outputs[0], outputs[1], mask, outputs[3]


@_wraps_reference
def sdpa_image_leaks_dn(outputs, call):
    """[bs, 1, T, T] True = may attend, but the last image's object queries may see the dn rows."""
    if outputs[0] is None:
        return outputs
    allowed = (~outputs[2]).expand(len(call["targets"]), 1, -1, -1).clone()
    n = _num_dn(call)
    allowed[-1, 0, n:, :n] = True  # BUG: object queries of one image see the dn rows
    return outputs[0], outputs[1], allowed, outputs[3]


@_wraps_reference
def additive_over_masked(outputs, call):
    """An additive [T, T] mask (0 / -1e9) that also blocks each dn row from itself."""
    if outputs[0] is None:
        return outputs
    mask = _additive(outputs[2], torch.float32, -1e9)
    n = _num_dn(call)
    mask[range(n), range(n)] = -1e9  # BUG: a dn row may not attend to itself
    return outputs[0], outputs[1], mask, outputs[3]


@_wraps_reference
def mask_layout_by_batch(outputs, call):
    """RT-DETR's [T, T] mask for one image, a per-head mask for several: two conventions."""
    if outputs[0] is None or len(call["targets"]) == 1:
        return outputs
    return outputs[0], outputs[1], _per_head(outputs[2], len(call["targets"])), outputs[3]  # BUG: layout varies


_logits_at_0 = _copy(fixes=frozenset({"logit_at_scale_0"}))


def space_by_batch(
    targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0
):
    """Logits at scale 0 for one image, box space for several: two conventions."""
    fn = _logits_at_0 if len(targets) == 1 else reference  # BUG: the space at scale 0 varies
    return fn(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)


def logits_with_box_padding(
    targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0
):
    """Logits at scale 0, but the padding rows left at 0 (box space) instead of inverse_sigmoid(0)."""
    outputs = _logits_at_0(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
    )
    if outputs[0] is None or box_noise_scale > 0:
        return outputs
    bbox = outputs[1].clone()
    max_gt = max(len(t["labels"]) for t in targets)
    slot = torch.arange(bbox.shape[1], device=bbox.device) % max_gt
    for i, t in enumerate(targets):
        bbox[i, slot >= len(t["labels"])] = 0  # BUG: padding rows in box space, real rows in logit space
    return outputs[0], bbox, outputs[2], outputs[3]


def _impl(name, fn, accepts_noise=True) -> Implementation:
    return Implementation(
        name=f"selftest-{name}", fn=fn, accepts_noise=accepts_noise, description=(fn.__doc__ or "").strip()
    )


CORRECT = {
    "mha_mask": (_impl("mha-mask", mha_mask), "bs_heads.blocked", None),
    "sdpa_mask": (_impl("sdpa-mask", sdpa_mask), "bs_1.may_attend", None),
    "additive_mask": (_impl("additive-mask", additive_mask), "tt.additive", None),
    "additive_heads_mask": (_impl("additive-heads-mask", additive_heads_mask), "bs_h.additive", None),
    "logits_at_scale_0": (_impl("logits-at-scale-0", _logits_at_0), None, "logit"),
}

BROKEN = {
    "mha_head_leaks_group": (
        _impl("mha-head-leaks-group", mha_head_leaks_group),
        "attention_mask.groups_see_each_other",
    ),
    "sdpa_image_leaks_dn": (_impl("sdpa-image-leaks-dn", sdpa_image_leaks_dn), "attention_mask.object_queries_see_dn"),
    "additive_over_masked": (_impl("additive-over-masked", additive_over_masked), "attention_mask.over_masked"),
    "mask_layout_by_batch": (_impl("mask-layout-by-batch", mask_layout_by_batch), "structure.mask.mixed"),
    "space_by_batch": (_impl("space-by-batch", space_by_batch, False), "boxes.box_space_at_scale_0.mixed"),
    "logits_with_box_padding": (
        _impl("logits-with-box-padding", logits_with_box_padding, False),
        "boxes.ground_truth_at_scale_0",
    ),
}
