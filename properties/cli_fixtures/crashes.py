"""Implementations that crash: ``build`` raises on batches with more than one box in an
image (an indexing bug); ``build_abort`` takes the whole process down (a segfaulting
extension), which only the matrix's subprocess isolation survives."""

import os

from dnspec.contract.reference import get_contrastive_denoising_training_group


def build(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    if any(len(t["labels"]) > 1 for t in targets):
        raise IndexError("index 1 is out of bounds for dimension 0 with size 1")
    return get_contrastive_denoising_training_group(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
    )


def build_abort(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    os._exit(139)  # as a segfault in a C extension would end the process
