"""What both builders of this fork share: the ground truth padded and tiled into groups,
the label and box noise (drawn as RT-DETR draws them), and the positive rows."""

import torch


def inverse_sigmoid(x, eps=1e-5):
    x = x.clip(min=0.0, max=1.0)
    return torch.log(x.clip(min=eps) / (1 - x).clip(min=eps))


def noised_groups(targets, num_classes, num_denoising, label_noise_ratio, box_noise_scale):
    """(labels [bs, N], boxes cxcywh [bs, N, 4] in box space, positive idx, num_group, num_dn), or None."""
    num_gts = [len(t["labels"]) for t in targets]
    device = targets[0]["labels"].device
    max_gt_num = max(num_gts)
    if max_gt_num == 0:
        return None
    num_group = max(1, num_denoising // max_gt_num)
    bs = len(num_gts)
    labels = torch.full([bs, max_gt_num], num_classes, dtype=torch.int32, device=device)
    boxes = torch.zeros([bs, max_gt_num, 4], device=device)
    real = torch.zeros([bs, max_gt_num], dtype=torch.bool, device=device)
    for i, n in enumerate(num_gts):
        if n > 0:
            labels[i, :n] = targets[i]["labels"]
            boxes[i, :n] = targets[i]["boxes"]
            real[i, :n] = True
    labels = labels.tile([1, 2 * num_group])
    boxes = boxes.tile([1, 2 * num_group, 1])
    real = real.tile([1, 2 * num_group])
    negative = torch.zeros([bs, max_gt_num * 2, 1], device=device)
    negative[:, max_gt_num:] = 1
    negative = negative.tile([1, num_group, 1])
    positive = (1 - negative).squeeze(-1) * real
    positive_idx = torch.split(torch.nonzero(positive)[:, 1], [n * num_group for n in num_gts])
    if label_noise_ratio > 0:
        flip = torch.rand_like(labels, dtype=torch.float) < (label_noise_ratio * 0.5)
        new_label = torch.randint_like(flip, 0, num_classes, dtype=labels.dtype)
        labels = torch.where(flip & real, new_label, labels)
    if box_noise_scale > 0:
        cx, cy, w, h = boxes.unbind(-1)
        corners = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        half = torch.tile(boxes[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(boxes)
        part = (part + 1.0) * negative + part * (1 - negative)
        corners += part * sign * half
        corners.clip_(min=0.0, max=1.0)
        x0, y0, x1, y1 = corners.unbind(-1)
        boxes = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)
    return labels, boxes, positive_idx, num_group, int(max_gt_num * 2 * num_group)


def group_of_rows(num_dn, num_queries, max_gt_num, device):
    """The group of each of the T = num_dn + num_queries rows; object queries get -1."""
    group = torch.full([num_dn + num_queries], -1, device=device)
    group[:num_dn] = torch.arange(num_dn, device=device) // (2 * max_gt_num)
    return group
