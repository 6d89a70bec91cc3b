"""Returns its outputs on another device than its inputs: on the CPU for CUDA inputs (a
stray ``.cpu()``), and, so that the same path is exercised on machines without a GPU, on
the ``meta`` device for CPU inputs."""

import torch

from dnspec.contract.reference import get_contrastive_denoising_training_group


def _move(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_move(v, device) for v in value]
    return value


def build(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    outputs = get_contrastive_denoising_training_group(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
    )
    if outputs[0] is None:
        return outputs
    other = "meta" if outputs[0].device.type != "cuda" else "cpu"
    return tuple(_move(o, other) for o in outputs)
