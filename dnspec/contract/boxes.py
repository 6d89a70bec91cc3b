"""Box conversions used by the CDN builder, written exactly as RT-DETR writes them.

The arithmetic order matters: the reference must be bit-identical to upstream, so
``0.5 * w`` (not ``w / 2``) in one direction and ``(x0 + x1) / 2`` in the other.
"""

from __future__ import annotations

import torch

INVERSE_SIGMOID_EPS = 1e-5


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) with x1 = cx - 0.5*w, x2 = cx + 0.5*w."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h) with cx = (x1 + x2) / 2, w = x2 - x1 (may be negative)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def inverse_sigmoid(x: torch.Tensor, eps: float = INVERSE_SIGMOID_EPS) -> torch.Tensor:
    """log(x / (1 - x)) after clamping x to [0, 1] and both x and 1 - x to at least eps.

    So every value lies in [log(eps / 1), log(1 / eps)] = [-11.51.., 11.51..]; a width
    that went negative (crossed corners) comes back as log(eps) -> sigmoid ~ 1e-5.
    """
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))
