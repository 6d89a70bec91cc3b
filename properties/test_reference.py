"""The reference against the layout oracles on hand-picked batches, and bit-identity
with transformers' RT-DETR port under the same seed."""

import ast
import inspect

import pytest
import torch

import dnspec.contract.layout
from dnspec.contract.layout import CdnLayout
from dnspec.contract.noise import draw_noise
from dnspec.contract.reference import build_from_noise
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.generation.cases import CdnCase, make_targets

HAND_PICKED = {
    "image with zero boxes": ((3, 0, 2), 100),
    "max_gt > num_denoising": ((7, 2), 5),
    "batch of one": ((4,), 100),
    "exactly divisible": ((5, 5), 20),
    "one box one group": ((1,), 1),
}


@pytest.mark.parametrize("name", HAND_PICKED)
def test_reference_matches_layout_oracles(name):
    counts, num_denoising = HAND_PICKED[name]
    case = CdnCase(
        make_targets(counts, seed=3, num_classes=7), num_classes=7, num_queries=11, num_denoising=num_denoising, seed=5
    )
    query_class, query_bbox, attn_mask, meta = case.call(reference)
    layout = CdnLayout(counts, num_denoising, 11)
    assert meta["dn_num_group"] == max(1, num_denoising // max(counts))
    assert meta["dn_num_split"] == [2 * max(counts) * meta["dn_num_group"], 11]
    assert torch.equal(attn_mask, layout.attn_mask())
    assert len(meta["dn_positive_idx"]) == len(counts)
    for got, expected in zip(meta["dn_positive_idx"], layout.positive_idx(), strict=True):
        assert torch.equal(got, expected)
    assert query_class.shape == (len(counts), layout.num_dn_rows, case.embed_dim)
    assert query_bbox.shape == (len(counts), layout.num_dn_rows, 4)


def test_oracle_mask_by_hand_for_two_groups():
    """m = 1, G = 2, Q = 1: rows 0-1 group 0, rows 2-3 group 1, row 4 an object query."""
    no, yes = False, True
    expected = torch.tensor(
        [
            [no, no, yes, yes, no],
            [no, no, yes, yes, no],
            [yes, yes, no, no, no],
            [yes, yes, no, no, no],
            [yes, yes, yes, yes, no],
        ]
    )
    assert torch.equal(CdnLayout((1,), 2, 1).attn_mask(), expected)
    assert CdnLayout((1,), 2, 1).row_is_negative().tolist() == [False, True, False, True]


def test_negative_rows_are_the_second_half_of_each_group():
    """Group k's negatives are rows [(2k+1)m, (2k+2)m) (the design notes' comment is wrong)."""
    layout = CdnLayout((3,), 9, 0)
    m = 3
    negatives = layout.row_is_negative().nonzero().flatten().tolist()
    assert negatives == [r for k in range(layout.num_groups) for r in range((2 * k + 1) * m, (2 * k + 2) * m)]


def test_nothing_to_denoise_returns_nones():
    embed = torch.nn.Embedding(4, 2, padding_idx=3)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    one = {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    assert reference([empty, empty], 3, 5, embed) == (None, None, None, None)
    assert reference([one], 3, 5, embed, num_denoising=0) == (None, None, None, None)
    assert reference([], 3, 5, embed) == (None, None, None, None)


def test_layout_oracle_shares_no_code_with_the_reference():
    """The oracle imports nothing from dnspec and has no loop over groups."""
    tree = ast.parse(inspect.getsource(dnspec.contract.layout))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(name and name.startswith("dnspec") for name in imported)
    assert not any(isinstance(n, (ast.For, ast.While)) for n in ast.walk(tree))


def test_injected_draw_equals_global_rng_in_upstream_order():
    """Seeding the global RNG and drawing with draw_noise gives what the composed
    function draws itself: the draw/apply split changes nothing."""
    case = CdnCase(make_targets((3, 0, 5), seed=1), num_classes=80, num_queries=7, seed=11)
    embed = case.class_embed()
    composed = case.call(reference, class_embed=embed)
    torch.manual_seed(case.seed)
    noise = draw_noise(3, 2 * 5 * 20, 80, 0.5, 1.0)
    applied = build_from_noise(case.fresh_targets(), 80, 7, embed, 100, 0.5, 1.0, noise)
    for a, b in zip(composed[:3], applied[:3], strict=True):
        assert torch.equal(a, b)


def _random_ragged_batch(generator):
    batch_size = int(torch.randint(1, 9, (1,), generator=generator))
    counts = torch.randint(0, 12, (batch_size,), generator=generator)
    counts[torch.rand(batch_size, generator=generator) < 0.3] = 0
    if int(counts.max()) == 0:
        counts[0] = 1
    num_classes = int(torch.randint(1, 91, (1,), generator=generator))
    seed = int(torch.randint(0, 2**31, (1,), generator=generator))
    num_denoising = int(torch.randint(1, 201, (1,), generator=generator))
    ratio = float(torch.rand(1, generator=generator))
    scale = float(torch.rand(1, generator=generator)) * 2
    return CdnCase(
        make_targets(counts.tolist(), seed=seed, num_classes=num_classes),
        num_classes=num_classes,
        num_queries=int(torch.randint(0, 301, (1,), generator=generator)),
        num_denoising=num_denoising,
        label_noise_ratio=ratio,
        box_noise_scale=scale,
        embed_dim=16,
        seed=seed,
    )


@pytest.mark.parametrize("batch", range(50))
def test_bit_identical_to_transformers_rt_detr(batch):
    modeling = pytest.importorskip(
        "transformers.models.rt_detr.modeling_rt_detr",
        reason="transformers is not installed (pip install 'dnspec[peers]')",
    )
    case = _random_ragged_batch(torch.Generator().manual_seed(1000 + batch))
    embed = case.class_embed()
    ours = case.call(reference, class_embed=embed)
    hf_targets = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in case.fresh_targets()]
    torch.manual_seed(case.seed)
    with torch.no_grad():
        theirs = modeling.get_contrastive_denoising_training_group(
            hf_targets,
            case.num_classes,
            case.num_queries,
            embed,
            case.num_denoising,
            case.label_noise_ratio,
            case.box_noise_scale,
        )
    assert torch.equal(ours[0], theirs[0])
    assert torch.equal(ours[1], theirs[1])
    assert torch.equal(ours[2], theirs[2] == -torch.inf)
    assert ours[3]["dn_num_group"] == theirs[3]["dn_num_group"]
    assert ours[3]["dn_num_split"] == theirs[3]["dn_num_split"]
    assert len(ours[3]["dn_positive_idx"]) == len(theirs[3]["dn_positive_idx"])
    for a, b in zip(ours[3]["dn_positive_idx"], theirs[3]["dn_positive_idx"], strict=True):
        assert torch.equal(a, b)
    # and both consumed the global RNG alike: the next draw is the same
    after_theirs = torch.rand(8)
    case.call(reference, class_embed=embed)
    assert torch.equal(torch.rand(8), after_theirs)
