"""dnspec.fast beyond the generic suite (which runs it with `--impl fast` / `fast-fixed`):
its extra arguments and the three upstream fixes, each shown absent without the switch."""

import pytest
import torch

from dnspec.cases import CdnCase, make_targets
from dnspec.fast import get_contrastive_denoising_training_group as fast
from dnspec.layout import CdnLayout
from dnspec.noise import draw_noise
from dnspec.reference import get_contrastive_denoising_training_group as reference
from dnspec.specs import load_implementation
from dnspec.suite import BY_NAME, RunOptions, evaluate

CASE = CdnCase(make_targets((4, 0, 7, 2), seed=3, num_classes=5), num_classes=5, num_queries=9, seed=7)


def _draw(case, **kwargs):
    layout = CdnLayout.for_targets(case.targets, case.num_denoising, case.num_queries)
    return draw_noise(case.batch_size, layout.num_dn_rows, case.num_classes, case.label_noise_ratio,
                      case.box_noise_scale, generator=torch.Generator().manual_seed(case.seed), **kwargs)


def test_max_gt_equal_to_the_largest_count_changes_nothing():
    noise = _draw(CASE)
    a = CASE.call(fast, noise=noise)
    b = CASE.call(fast, noise=noise, max_gt=7)
    for x, y in zip(a[:3], b[:3]):
        assert torch.equal(x, y)


def test_max_gt_wider_than_the_batch_pads_every_image():
    """max_gt = 10 for a batch whose largest image has 7 boxes: the layout of a batch
    padded to 10 boxes per group half."""
    query_class, query_bbox, attn_mask, meta = CASE.call(fast, max_gt=10)
    layout = CdnLayout((4, 0, 7, 2, 10), CASE.num_denoising, CASE.num_queries)  # m = 10
    assert meta["dn_num_group"] == layout.num_groups and query_class.shape[1] == layout.num_dn_rows
    assert torch.equal(attn_mask, layout.attn_mask())
    for got, expected in zip(meta["dn_positive_idx"], layout.positive_idx()):
        assert torch.equal(got, expected)


def test_max_gt_smaller_than_the_batch_is_refused():
    with pytest.raises(ValueError, match="max_gt"):
        CASE.call(fast, max_gt=6)


def test_bit_identical_to_the_reference_under_one_draw_in_every_dtype():
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        case = CASE.to(dtype=dtype)
        noise = _draw(case, box_dtype=dtype)
        embed = case.class_embed()
        ours, theirs = case.call(fast, class_embed=embed, noise=noise), case.call(reference, class_embed=embed, noise=noise)
        for x, y in zip(ours[:3], theirs[:3]):
            assert x.dtype == y.dtype and torch.equal(x, y), dtype


def test_fixed_replacement_label_always_differs():
    """(c): under fix_upstream every flipped real row carries another class; without it
    some flipped rows keep their label (the draw's replacement equals it)."""
    case = CASE.with_config(label_noise_ratio=1.0, num_classes=2)
    noise = _draw(case)
    embed = case.class_embed()
    layout = CdnLayout.for_targets(case.targets, case.num_denoising, case.num_queries)
    flipped = noise.label_flip & layout.real_rows()
    gt = torch.full((case.batch_size, layout.max_gt), 2)
    for i, t in enumerate(case.targets):
        gt[i, : len(t["labels"])] = t["labels"].clamp(max=1)
    case = case.with_config(targets=tuple({"labels": t["labels"].clamp(max=1), "boxes": t["boxes"]} for t in case.targets))
    gt = gt[:, layout.row_slot()]

    def kept(**kwargs):
        rows = case.call(fast, class_embed=embed, noise=noise, **kwargs)[0]
        labels = torch.cdist(rows.reshape(-1, rows.shape[-1]), embed.weight).argmin(1).view_as(gt)
        return int((flipped & (labels == gt)).sum())

    assert kept(fix_upstream=True) == 0
    assert kept() > 0


@pytest.mark.parametrize("advisory", ["box_output_space", "no_collapsed_boxes", "label_flip_rate_is_ratio"])
def test_each_fix_holds_with_the_switch_and_not_without(advisory):
    """(a), (b), (c) as the suite's advisories: enforced on fast-fixed (it declares
    fixes_advisories) and violated by fast, which stays upstream-compatible."""
    assert evaluate(BY_NAME[advisory], load_implementation("fast-fixed")).status == "pass"
    assert evaluate(BY_NAME[advisory], load_implementation("fast"), RunOptions(strict=True)).status == "fail"


# dynamo traces through the lru_cache'd shape helpers (warning it ignores the cache);
# the result is compared with the eager call below
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
def test_compiles_without_graph_breaks_given_max_gt():
    torch._dynamo.reset()
    compiled = torch.compile(lambda t, e, n: fast(t, 5, 9, e, noise=n, max_gt=7, validate=False), fullgraph=True, backend="eager")
    noise = _draw(CASE)
    embed = CASE.class_embed()
    with torch.no_grad():
        got = compiled(CASE.fresh_targets(), embed, noise)
        expected = fast(CASE.fresh_targets(), 5, 9, embed, noise=noise, max_gt=7)
    for x, y in zip(got[:3], expected[:3]):
        assert torch.equal(x, y)
