"""Attention-mask layouts real builders return, and reading any of them back as RT-DETR's.

RT-DETR returns one ``[T, T]`` bool mask, True where query i may NOT attend to key j
(T = N dn rows + Q object queries). A fork that feeds its decoder's attention directly
returns the same block structure in that attention's own layout:

``tt``        ``[T, T]``: RT-DETR (and ``nn.MultiheadAttention``'s 2-D mask).
``bs_heads``  ``[bs*heads, T, T]``: ``nn.MultiheadAttention``'s 3-D mask, slice ``b*heads + h``
              for image b and head h; heads = first dim / bs.
``bs_1``      ``[bs, 1, T, T]`` (or ``[1, 1, T, T]``): ``scaled_dot_product_attention``'s broadcast mask.
``bs_h``      ``[bs, heads, T, T]``: ``scaled_dot_product_attention``'s per-head mask.

and in one of three value conventions:

``blocked``     bool, True = may not attend (RT-DETR, ``nn.MultiheadAttention``);
``may_attend``  bool, True = may attend (``scaled_dot_product_attention``);
``additive``    float, added to the attention logits: 0 where a query may attend, -inf or
                a large negative (<= :data:`BLOCKING`, e.g. -1e4, -1e9, ``finfo.min``) where it
                may not.

A convention is ``"<layout>.<values>"`` (RT-DETR's: ``tt.blocked``). The layout and the dtype
are read off the tensor; the polarity of a bool mask is not always: the ``[T, T]`` layout
is RT-DETR's, so its bool mask is True = blocked; in the other layouts a bool mask may be
either (``nn.MultiheadAttention`` and SDPA disagree), so it is read under the polarity that
makes the block structure hold, when exactly one does; when neither does (a broken
mask), under the one with fewer wrong entries, and the reading says it is ambiguous.

:func:`read_mask` returns every slice as RT-DETR's ``[T, T]`` bool (True = blocked), so
that every slice is judged against the layout oracle, and :meth:`ReadMask.combined` the
single ``[T, T]`` mask the other checks compare (blocked only where every slice blocks).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

# an additive entry at or below this blocks: exp(-1000) is 0 in every float dtype
BLOCKING = -1e3

TT, BS_HEADS, BS_1, BS_H = "tt", "bs_heads", "bs_1", "bs_h"
BLOCKED, MAY_ATTEND, ADDITIVE = "blocked", "may_attend", "additive"
RTDETR = f"{TT}.{BLOCKED}"

LAYOUT_TITLES = {
    TT: "[T, T]",
    BS_HEADS: "[bs*heads, T, T] (nn.MultiheadAttention)",
    BS_1: "[bs, 1, T, T] (SDPA broadcast)",
    BS_H: "[bs, heads, T, T] (SDPA per head)",
}
VALUE_TITLES = {
    BLOCKED: "bool, True = blocked",
    MAY_ATTEND: "bool, True = may attend (SDPA)",
    ADDITIVE: f"additive float (0 = may attend, -inf or <= {BLOCKING:g} = blocked)",
}


def title(convention: str) -> str:
    """``'bs_heads.additive'`` -> ``'[bs*heads, T, T] (nn.MultiheadAttention), additive float (...)'``;
    RT-DETR's gets ``(RT-DETR)``."""
    layout, _, values = convention.partition(".")
    text = f"{LAYOUT_TITLES.get(layout, layout)}, {VALUE_TITLES.get(values, values)}"
    return text + " (RT-DETR)" if convention == RTDETR else text


@dataclass(frozen=True)
class ReadMask:
    """A mask read back: its convention, every slice as bool ``[S, T, T]`` (True =
    blocked), how many slices each image has (``heads``; 1 for ``tt`` and ``bs_1``), and,
    for a bool mask whose polarity was chosen as the nearer of two wrong readings, why
    (``ambiguous``; empty when the polarity is certain)."""

    layout: str
    values: str
    slices: torch.Tensor
    heads: int
    ambiguous: str = ""

    @property
    def convention(self) -> str:
        return f"{self.layout}.{self.values}"

    def slice_name(self, k: int) -> str:
        """Where slice k sits in the tensor, in words (empty for the one ``[T, T]`` slice)."""
        if self.layout == TT:
            return ""
        image, head = divmod(k, self.heads)
        index = {BS_HEADS: f"[{k}]", BS_1: f"[{image}, 0]", BS_H: f"[{image}, {head}]"}[self.layout]
        return f"slice attn_mask{index} (image {image}, head {head})"

    def combined(self) -> torch.Tensor:
        """bool [T, T]: blocked where every slice blocks (any slice that lets a query see a
        key shows in it); computed once per read mask (read-only, as the outputs are)."""
        return self._every_slice_blocks

    @functools.cached_property
    def _every_slice_blocks(self) -> torch.Tensor:
        return self.slices.all(dim=0)


@dataclass(frozen=True)
class Unreadable:
    """Why a mask is none of the layouts above: ``part`` is ``type``, ``shape``, ``dtype``
    or ``values`` (the structure check's id), ``message`` one line."""

    part: str
    message: str


def _layout(shape: tuple[int, ...], bs: int, size: int) -> tuple[str, int] | None:
    if len(shape) < 2 or shape[-2:] != (size, size):
        return None
    if len(shape) == 2:
        return TT, 1
    if len(shape) == 3 and shape[0] > 0 and bs > 0 and shape[0] % bs == 0:
        return BS_HEADS, shape[0] // bs
    if len(shape) == 4 and shape[0] in {bs, 1} and shape[1] >= 1:
        return (BS_1, 1) if shape[1] == 1 else (BS_H, shape[1])
    return None


def accepted_shapes(bs: int, size: int) -> str:
    return f"[{size}, {size}], [{bs}*heads, {size}, {size}], [{bs}, 1, {size}, {size}] or [{bs}, heads, {size}, {size}]"


def read_mask(mask, batch_size: int, size: int, expected: torch.Tensor | None = None) -> ReadMask | Unreadable:
    """``mask`` read in one of the layouts above, for a batch of ``batch_size`` images and
    T = ``size``; ``expected`` (bool [T, T], True = blocked: the layout oracle) decides the
    polarity of a bool mask outside the ``[T, T]`` layout (see the module docstring)."""
    if not isinstance(mask, torch.Tensor):
        return Unreadable("type", f"attn_mask is {type(mask).__name__}, expected a tensor")
    found = _layout(tuple(mask.shape), batch_size, size)
    if found is None:
        return Unreadable(
            "shape", f"attn_mask has shape {list(mask.shape)}, expected {accepted_shapes(batch_size, size)}"
        )
    layout, heads = found
    slices = mask.detach().reshape(-1, size, size)
    if mask.dtype == torch.bool:
        if layout == TT or expected is None:
            return ReadMask(layout, BLOCKED, slices, heads)
        return _by_polarity(layout, heads, slices, expected.to(slices.device))
    if mask.is_floating_point():
        blocked = slices <= BLOCKING
        if not bool((blocked | (slices == 0)).all()):
            value = float(slices[~blocked & (slices != 0)][0])
            return Unreadable(
                "dtype",
                f"attn_mask is a {mask.dtype} mask holding {value:g}: a float mask must be additive, 0 where a query "
                f"may attend and -inf or <= {BLOCKING:g} where it may not (or use a bool mask)",
            )
        return ReadMask(layout, ADDITIVE, blocked, heads)
    return Unreadable("dtype", f"attn_mask has dtype {mask.dtype}, expected torch.bool or an additive float mask")


def _by_polarity(layout: str, heads: int, slices: torch.Tensor, expected: torch.Tensor) -> ReadMask:
    """The polarity under which the structure holds when exactly one makes it hold; else
    the one with fewer wrong entries (True = blocked on a tie), noted as ambiguous."""
    wrong_blocked = int((slices != expected).sum())
    wrong_open = int((slices == expected).sum())
    if wrong_blocked == 0:
        return ReadMask(layout, BLOCKED, slices, heads)
    if wrong_open == 0:
        return ReadMask(layout, MAY_ATTEND, ~slices, heads)
    values = MAY_ATTEND if wrong_open < wrong_blocked else BLOCKED
    note = (
        f"its polarity is ambiguous: the block structure holds under neither reading ({wrong_blocked} entries wrong "
        f"read as True = blocked, {wrong_open} read as True = may attend); judged as {VALUE_TITLES[values]}"
    )
    return ReadMask(layout, values, ~slices if values == MAY_ATTEND else slices, heads, note)
