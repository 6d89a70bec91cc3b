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
    implementation always returns logits. At scale 0 the checks read the space off the
    output (:func:`space_at_scale_0`), since forks that return logits there too are a
    recognised convention."""
    return fixes_advisories or box_noise_scale > 0


BOX, LOGIT = "box", "logit"
SPACE_TITLES = {
    BOX: "box-space boxes (RT-DETR)",
    LOGIT: "logit-space boxes, as at every other scale (fixes advisory box_output_space)",
}
# how far a decoded coordinate may be from its ground truth and still tell the space apart
# (the box check then judges the output at the dtype's own tolerance)
SPACE_TOLERANCE = 1e-2


def space_at_scale_0(bbox: torch.Tensor, gt_boxes: torch.Tensor, real: torch.Tensor) -> str | None:
    """The space of a box output ``bbox`` [bs, N, 4] returned at box_noise_scale 0 (every
    real row a copy of its ground truth ``gt_boxes`` [bs, N, 4], padding rows where
    ``real`` [bs, N] is False): ``'box'`` when every row is within :data:`SPACE_TOLERANCE` of
    its box-space value (ground truth; 0 on padding rows) and ``'logit'`` when every row's
    sigmoid is within it of the same values (padding: sigmoid(inverse_sigmoid(0)) = 1e-5),
    when exactly one of the two fits; None when neither or both do."""
    values = bbox.to(torch.float64)
    target = torch.where(real[..., None], gt_boxes.to(torch.float64), torch.zeros_like(values))
    fits_box = bool(((values - target).abs() <= SPACE_TOLERANCE).all())
    fits_logit = bool(((values.sigmoid() - target).abs() <= SPACE_TOLERANCE).all())
    if fits_box == fits_logit:
        return None
    return BOX if fits_box else LOGIT
