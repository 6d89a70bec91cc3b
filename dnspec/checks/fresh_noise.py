"""The ``fresh_noise`` property: with noise switched on, each call draws fresh noise from
the global RNG, continuing from where the caller left it.

``determinism`` (the same ``torch.manual_seed`` gives the same outputs) holds for a builder
that reseeds itself or replays noise it drew on an earlier call, and so does every other
property, one call at a time; a training loop built on it sees the same noise every step.
This property makes a second call on the same inputs right after the main call, without
reseeding between (:meth:`dnspec.calling.trial.Trial.consecutive`), and judges with the
global RNG states (the CPU's, and CUDA's once initialized) around each call, never with a
chance coincidence of two draws, so that it cannot fail a correct builder whatever order
it draws in and whichever device's generator it draws from:

- a builder **replays** noise when the second call gives the outputs of the first and
  draws nothing from any global RNG (with noise on, a builder that draws fresh noise
  changes some global RNG state);
- a builder **reseeds** when, started from two different RNG states, two calls leave the
  same state behind (a third call, after ``torch.manual_seed`` with another seed, is made
  only when the first two look suspicious: same outputs or nothing drawn).

Noise is on when the case has denoising rows (num_denoising > 0 and a real box) and a
noise (label_noise_ratio > 0 or box_noise_scale > 0).
"""

from __future__ import annotations

import torch

from dnspec.calling.torch_state import same_rng_state
from dnspec.checks.violations import fail

OTHER_SEED = 0x5EED


def noise_on(case) -> bool:
    return (
        case.num_denoising > 0
        and max(case.counts, default=0) > 0
        and (case.label_noise_ratio > 0 or case.box_noise_scale > 0)
    )


def _same_outputs(a, b) -> bool:
    for x, y in zip(a[:2], b[:2], strict=False):
        if (x is None) != (y is None):
            return False
        if x is not None and not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            return False
        if x is not None and (x.shape != y.shape or not torch.equal(x, y)):
            return False
    return True


def check_fresh_noise(trial) -> None:
    """Two consecutive calls draw different noise, and the RNG state a call leaves depends
    on the state it found (see the module docstring)."""
    case = trial.case
    if not noise_on(case):
        return
    main, second, _, (before, after) = trial.consecutive()
    if not isinstance(main, tuple) or main[0] is None or not isinstance(second, tuple):
        return  # nothing to compare (structure judges the outputs)
    replayed = _same_outputs(main, second)
    drew = not same_rng_state(before, after)
    if drew and not replayed:
        return
    other_before, other_after = trial.from_other_state(case.seed ^ OTHER_SEED)
    if same_rng_state(other_after, after) and not same_rng_state(other_before, before):
        fail(
            "it reseeds the global RNG: two calls started from different RNG states leave the same state behind"
            + (" and draw the same noise" if replayed else "")
            + " (torch.manual_seed inside the builder: every training step gets the same noise, and the caller's "
            "RNG is reset at each call)",
            "fresh_noise.reseeds",
        )
    if replayed and not drew:
        fail(
            "it replays noise drawn earlier: two consecutive calls on the same inputs, without reseeding between, "
            "gave the same noised queries and the second drew nothing from the global RNG (noise cached and "
            "reused: every training step gets the same noise)",
            "fresh_noise.replays",
        )
