"""Box helpers with a "safe" corner conversion (SSP-RT-DETR's box_ops): widths and heights
floored at 1e-4 and the corners kept inside [1e-4, 1 - 1e-4]. Written for dnspec's tests."""

import torch

from .geometry import logit, to_center  # noqa: F401

TINY = 1e-4


def to_corners(b):
    cx, cy, w, h = b.unbind(-1)
    w, h = w.clamp(min=TINY), h.clamp(min=TINY)
    low = torch.stack([cx - w / 2, cy - h / 2], dim=-1).clamp(min=TINY)
    high = torch.stack([cx + w / 2, cy + h / 2], dim=-1).clamp(max=1 - TINY)
    return torch.cat([low, high], dim=-1)
