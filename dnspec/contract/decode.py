"""Reading a builder's outputs back into the quantities the properties talk about:
which class each query row carries, and which box.

Everything here is defined from the contract alone (embedding rows, sigmoid of logits),
so it applies to any implementation.
"""

from __future__ import annotations

import torch


def recover_labels(input_query_class: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row, the index of the nearest row of ``weight`` (the class it
    carries) and whether the query row equals that weight row exactly.

    Returns (labels int64 [bs, N], exact bool [bs, N]).
    """
    bs, n, dim = input_query_class.shape
    rows = input_query_class.reshape(-1, dim).to(torch.float64)
    table = weight.to(device=rows.device, dtype=torch.float64)
    labels = torch.cdist(rows[None], table[None])[0].argmin(dim=1)
    exact = (input_query_class.reshape(-1, dim) == weight.to(input_query_class.device)[labels]).all(dim=1)
    return labels.reshape(bs, n), exact.reshape(bs, n)


def decode_boxes(input_query_bbox: torch.Tensor, logit_space: bool) -> torch.Tensor:
    """cxcywh boxes in [0, 1] as float64: ``sigmoid(bbox)`` when the output is in logit
    space, the output itself when it is in box space."""
    boxes = input_query_bbox.to(torch.float64)
    return boxes.sigmoid() if logit_space else boxes


def corners(boxes_cxcywh: torch.Tensor) -> torch.Tensor:
    """xyxy corners of cxcywh boxes, in float64 arithmetic."""
    boxes = boxes_cxcywh.to(torch.float64)
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def expects_logit_space(box_noise_scale: float, fixes_advisories: bool) -> bool:
    """Upstream returns logits only when box_noise_scale > 0 (advisory (a)); a fixed
    implementation always returns logits."""
    return fixes_advisories or box_noise_scale > 0
