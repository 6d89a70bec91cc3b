"""Issue 5's speed check, standalone: the reference, ``fast`` and the floor (the class
embedding lookup alone, for the same output size [bs, N, 256]) timed side by side with
pytest-benchmark, on one CPU thread, 80 classes, D=256, 300 queries, 100 denoising, image 0
with 30 boxes and the others a seeded uniform count in [0, 30]. It uses no fixture of
``benchmarks/conftest.py``, and asserts no time (speed is read off the table)::

    pytest benchmarks/test_fast_floor.py --benchmark-group-by=param:images \\
        --benchmark-timer=time.thread_time --benchmark-columns=median,iqr,rounds

The module also names the two builders *without* input validation (``reference_builder``,
``fast_builder``), so that ``dnspec bench`` can time the builders' own work beside the
defaults, which validate::

    dnspec bench reference fast dnspec.implementations.fast:embedding_floor \\
        benchmarks/test_fast_floor.py:reference_builder benchmarks/test_fast_floor.py:fast_builder \\
        --max-boxes 30
"""

from __future__ import annotations

import functools
import random

import pytest
import torch

from dnspec.benchmarks.timing import steady_allocator
from dnspec.contract import reference
from dnspec.generation.cases import make_targets
from dnspec.implementations import fast

reference_builder = functools.partial(reference.get_contrastive_denoising_training_group, validate=False)
fast_builder = functools.partial(fast.get_contrastive_denoising_training_group, validate=False)

NUM_CLASSES, EMBED_DIM, NUM_QUERIES, NUM_DENOISING, MAX_BOXES = 80, 256, 300, 100, 30

IMPLEMENTATIONS = {
    "reference": reference.get_contrastive_denoising_training_group,
    "fast": fast.get_contrastive_denoising_training_group,
    "reference-unvalidated": reference_builder,
    "fast-unvalidated": fast_builder,
    "floor": fast.embedding_floor,
}


def _batch(batch_size: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    counts = [MAX_BOXES] + [rng.randint(0, MAX_BOXES) for _ in range(batch_size - 1)]
    return list(make_targets(counts, seed=seed, num_classes=NUM_CLASSES))


@pytest.mark.parametrize("images", [1, 4, 16, 64, 256])
@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
def test_time_per_call(benchmark, implementation, images):
    steady_allocator()  # no page faults on fresh memory in the timed calls (see dnspec.benchmarks.timing)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        targets = _batch(images)
        embed = torch.nn.Embedding(NUM_CLASSES + 1, EMBED_DIM, padding_idx=NUM_CLASSES)
        call = IMPLEMENTATIONS[implementation]
        benchmark.group = f"batch {images}"
        benchmark.extra_info.update(batch_size=images, implementation=implementation)
        outputs = benchmark(call, targets, NUM_CLASSES, NUM_QUERIES, embed, NUM_DENOISING, 0.5, 1.0)
    finally:
        torch.set_num_threads(threads)
    assert outputs[0].shape[:2] == (images, 2 * MAX_BOXES * (NUM_DENOISING // MAX_BOXES))
