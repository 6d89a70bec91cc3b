"""The same helpers, in a module that also imports a third-party package for a helper the
builder never uses (the forks' box_ops.py imports torchvision for `box_area`). The package
named here is not installed anywhere: the pattern is the import, not the package."""

import torch
from survey_absent_vision_lib.ops import box_area  # noqa: F401  (only the loss uses it in a fork)

from .geometry import logit, to_center, to_corners  # noqa: F401


def area(b):
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) + torch.zeros(())
