"""Tolerances per dtype, in one table (as torchvision's test_ops keeps them).

``box``: absolute tolerance on decoded box coordinates in [0, 1], after the logit
round trip (inverse_sigmoid then sigmoid). The round trip loses ~|logit| ulps of the
logit, at most 11.5 * eps * x(1-x) in x, plus the noise arithmetic's own rounding, so
a few hundred ulps at 1.0 is safe and still far below any real bug's effect.
``embed``: absolute tolerance on class-query values against the float64 run (a cast of
the same weight row, so one rounding of the dtype).
``grad``: tolerance on the gradient that reaches class_embed.weight, relative to the sum
of the magnitudes of the cotangent entries summed into that row. The cotangent is small
integers, so in float32 and float64 the sums are exact (0); float16 and bfloat16 round
partial sums beyond 2048 and 256.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    box: float
    embed: float
    grad: float = 0.0


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(box=1e-9, embed=0.0, grad=0.0),
    torch.float32: Tolerance(box=2e-5, embed=1e-6, grad=0.0),
    torch.float16: Tolerance(box=4e-3, embed=4e-3, grad=4e-3),
    torch.bfloat16: Tolerance(box=3e-2, embed=3e-2, grad=3e-2),
}


# inverse_sigmoid clamps x and 1 - x to at least 1e-5, so a decoded centre or side can
# sit up to 1e-5 from the value it encodes (a full-image box decodes with side 1 - 1e-5),
# and a decoded corner (centre +- side/2) up to 1.5e-5 from its true place.
LOGIT_DECODE_SLACK = 2e-5


def decoded_box_tolerance(dtype: torch.dtype, logit_space: bool) -> float:
    """Absolute tolerance on a box corner decoded from the output: the dtype's own,
    plus the inverse_sigmoid clamp's slack when the output is in logit space."""
    return tolerance_for(dtype).box + (LOGIT_DECODE_SLACK if logit_space else 0.0)


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    """The tolerance row for ``dtype`` (ValueError naming the dtype if it has none)."""
    try:
        return TOLERANCES[dtype]
    except KeyError:
        raise ValueError(f"dtype: no tolerance is defined for {dtype}; known: {list(TOLERANCES)}") from None
