"""dnspec.implementations.fast beyond the generic suite (which runs it as ``--impl fast`` / ``fast-fixed``):
bit-identity with the reference under one injected draw, its two index plans, max_gt,
torch.compile, the fused draws' distributions, the three upstream fixes (each shown absent
without the switch), and the CUDA checks (skipped cleanly without a GPU)."""

import random

import pytest
import torch
from scipy import stats

from dnspec.checks.suite import BY_NAME, RunOptions
from dnspec.contract.boxes import inverse_sigmoid
from dnspec.contract.layout import CdnLayout
from dnspec.contract.noise import NoiseDraw, draw_noise
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.generation.cases import CdnCase, make_targets
from dnspec.implementations import fast as fast_module
from dnspec.implementations.fast import get_contrastive_denoising_training_group as fast
from dnspec.implementations.specs import load_implementation
from dnspec.running.runner import evaluate

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: run on a GPU machine")
CASE = CdnCase(make_targets((4, 0, 7, 2), seed=3, num_classes=5), num_classes=5, num_queries=9, seed=7)


def _draw(case, *, device="cpu", **kwargs):
    """The draw the reference would consume for ``case`` (upstream's shapes), seeded."""
    layout = CdnLayout.for_targets(case.targets, case.num_denoising, case.num_queries)
    return draw_noise(
        case.batch_size,
        layout.num_dn_rows,
        case.num_classes,
        case.label_noise_ratio,
        case.box_noise_scale,
        box_dtype=case.dtype,
        device=device,
        generator=torch.Generator(device=device).manual_seed(case.seed),
        **kwargs,
    )


def _random_case(seed: int, device: str = "cpu") -> CdnCase:
    """A seeded ragged batch and configuration, edge values included: empty images, one
    class, a ratio of 0 or 1, a scale of 0, more boxes than num_denoising, no queries."""
    rng = random.Random(seed)
    counts = [rng.choice([0, 0, 1, 2, 3, 5, 9, 13]) for _ in range(rng.randint(1, 6))]
    num_classes = rng.choice([1, 2, 3, 80])
    dtype = rng.choice(DTYPES)
    case = CdnCase(
        make_targets(counts, seed=seed, num_classes=num_classes, dtype=dtype),
        num_classes=num_classes,
        num_queries=rng.choice([0, 3, 10]),
        num_denoising=rng.choice([0, 1, 5, 10, 100]),
        label_noise_ratio=rng.choice([0.0, 0.5, 1.0]),
        box_noise_scale=rng.choice([0.0, 0.4, 1.0, 2.5]),
        seed=seed,
        dtype=dtype,
    )
    return case.to(device)


def _assert_same(got, expected, note=""):
    """Every output equal bit for bit, with the same dtype, device and types."""
    if expected[0] is None:
        assert got == expected, note
        return
    for name, x, y in zip(("query_class", "query_bbox", "attn_mask"), got[:3], expected[:3], strict=True):
        assert x.dtype == y.dtype and x.device == y.device and x.shape == y.shape, (name, note)
        assert torch.equal(x, y), (name, note)
    meta, expected_meta = got[3], expected[3]
    assert meta["dn_num_group"] == expected_meta["dn_num_group"] and type(meta["dn_num_group"]) is int, note
    assert meta["dn_num_split"] == expected_meta["dn_num_split"], note
    assert isinstance(meta["dn_positive_idx"], tuple), note
    assert len(meta["dn_positive_idx"]) == len(expected_meta["dn_positive_idx"]), note
    for x, y in zip(meta["dn_positive_idx"], expected_meta["dn_positive_idx"], strict=True):
        assert x.dtype == y.dtype == torch.int64 and x.device == y.device and torch.equal(x, y), note


def _both(case, **kwargs):
    """(fast, reference) on the same injected draw, the same embedding."""
    noise = _draw(case, device=case.device) if _has_output(case) else None
    embed = case.class_embed()
    return case.call(fast, class_embed=embed, noise=noise, **kwargs), case.call(
        reference, class_embed=embed, noise=noise
    )


def _has_output(case) -> bool:
    return CdnLayout.for_targets(case.targets, case.num_denoising, case.num_queries).produces_output


# --- the injected-draw equality -----------------------------------------------------------


@pytest.mark.parametrize("block", range(4))
def test_bit_identical_to_the_reference_under_one_draw(block):
    """On 240 seeded ragged batches over every dtype and edge configuration, the four
    outputs equal the reference's bit for bit under the same injected draw."""
    for seed in range(block * 60, (block + 1) * 60):
        case = _random_case(seed)
        _assert_same(*_both(case), note=repr(case))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bit_identical_in_every_dtype_at_every_scale(dtype):
    for scale in (0.0, 1.0, 3.0):
        case = CASE.to(dtype=dtype).with_config(box_noise_scale=scale)
        _assert_same(*_both(case), note=(dtype, scale))


@pytest.mark.parametrize("config", [dict(num_denoising=0), dict(num_denoising=-3)], ids=str)
def test_no_output_without_denoising(config):
    case = CASE.with_config(**config)
    assert case.call(fast) == (None, None, None, None)
    assert case.call(fast, noise=_draw(CASE)) == (None, None, None, None)


def test_no_output_without_boxes():
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    for targets in ((), (empty,), (empty, empty)):
        assert fast(list(targets), 5, 9, torch.nn.Embedding(6, 4)) == (None, None, None, None)


def test_more_boxes_than_num_denoising_gives_one_group():
    case = CASE.with_config(num_denoising=3)
    got, expected = _both(case)
    _assert_same(got, expected)
    assert got[3]["dn_num_group"] == 1


def test_inverse_sigmoid_rewrite_is_bit_identical_on_special_values():
    """The one-op-shorter inverse_sigmoid equals dnspec.contract.boxes.inverse_sigmoid everywhere:
    negatives, -0, subnormals, eps's neighbours, 1 - eps, 1, above 1, inf, NaN."""
    tiny = torch.finfo(torch.float32).tiny
    values = [
        -2.0,
        -1e-30,
        -0.0,
        0.0,
        tiny / 4,
        1e-6,
        9.99e-6,
        1e-5,
        1.01e-5,
        0.3,
        0.5,
        1 - 1e-5,
        1 - 1e-6,
        1.0,
        1.0 + 1e-6,
        7.0,
        float("inf"),
        float("-inf"),
        float("nan"),
    ]
    for dtype in DTYPES:
        x = torch.tensor(values, dtype=torch.float64).to(dtype)
        expected, got = inverse_sigmoid(x), fast_module._inverse_sigmoid(x)
        assert torch.equal(got.nan_to_num(nan=123.0), expected.nan_to_num(nan=123.0)), dtype
        assert torch.equal(got.isnan(), expected.isnan())


def test_inputs_and_the_draw_are_not_modified():
    case = CASE
    noise = _draw(case)
    saved = [t.clone() for t in (noise.label_flip, noise.replacement_label, noise.box_sign, noise.box_magnitude)]
    targets = case.fresh_targets()
    fast(targets, 5, 9, case.class_embed(), noise=noise)
    for before, after in zip(
        saved, (noise.label_flip, noise.replacement_label, noise.box_sign, noise.box_magnitude), strict=True
    ):
        assert torch.equal(before, after)
    for t, original in zip(targets, case.targets, strict=True):
        assert torch.equal(t["labels"], original["labels"]) and torch.equal(t["boxes"], original["boxes"])


def test_each_call_returns_its_own_mask():
    """The mask comes from a per-shape cache, but a caller writing into it changes no
    later call's mask."""
    first = CASE.call(fast)[2]
    first.fill_(True)
    assert torch.equal(CASE.call(fast)[2], CdnLayout.for_targets(CASE.targets, 100, 9).attn_mask())


# --- the two index plans and max_gt ----------------------------------------------------------


def test_host_and_device_plans_agree():
    """The numpy plan (default) and the device plan (max_gt / torch.compile) give the same
    rows and positive indices, and positive indices are the layout oracle's."""
    rng = random.Random(0)
    for _ in range(100):
        counts = [rng.choice([0, 1, 2, 5, 30]) for _ in range(rng.randint(1, 9))]
        if not any(counts):
            continue
        max_gt = max(counts) + rng.choice([0, 0, 3])
        num_denoising = rng.choice([1, 10, 100])
        num_group = max(1, num_denoising // max_gt)
        host = fast_module._host_plan(counts, max_gt, num_group, torch.device("cpu"))
        device = fast_module._device_plan(counts, max_gt, num_group, torch.device("cpu"))
        assert torch.equal(host.rows, device.rows) and torch.equal(host.positive, device.positive), counts
        if max_gt == max(counts):
            expected = torch.cat(CdnLayout(tuple(counts), num_denoising, 0).positive_idx())
            assert torch.equal(host.positive, expected), counts


def test_max_gt_equal_to_the_largest_count_changes_nothing():
    """max_gt switches to the device plan; with the batch's own width the outputs are the
    default path's, under an injected draw and under the global RNG alike."""
    for seed in range(40):
        case = _random_case(seed)
        if not _has_output(case):
            continue
        largest = max(case.counts)
        noise = _draw(case)
        embed = case.class_embed()
        _assert_same(
            case.call(fast, class_embed=embed, noise=noise, max_gt=largest),
            case.call(fast, class_embed=embed, noise=noise),
            repr(case),
        )
        _assert_same(case.call(fast, class_embed=embed, max_gt=largest), case.call(fast, class_embed=embed), repr(case))


def test_max_gt_wider_than_the_batch_pads_every_image():
    """max_gt = 10 for a batch whose largest image has 7 boxes: the layout of a batch padded
    to 10 boxes per group half."""
    query_class, query_bbox, attn_mask, meta = CASE.call(fast, max_gt=10)
    layout = CdnLayout((4, 0, 7, 2, 10), CASE.num_denoising, CASE.num_queries)
    assert meta["dn_num_group"] == layout.num_groups and query_class.shape[1] == layout.num_dn_rows
    assert query_bbox.shape == (4, layout.num_dn_rows, 4)
    assert torch.equal(attn_mask, layout.attn_mask())
    # the layout's fifth image (10 boxes) only sets the padded width: the batch has four
    for got, expected in zip(meta["dn_positive_idx"], layout.positive_idx()[:4], strict=True):
        assert torch.equal(got, expected)


def test_max_gt_smaller_than_the_batch_is_refused():
    with pytest.raises(ValueError, match="max_gt"):
        CASE.call(fast, max_gt=6)


def test_compiles_without_graph_breaks_given_max_gt():
    """torch.compile(fullgraph=True) traces the call (dynamo finds no graph break, for an
    injected draw and for the global RNG, with and without the fixes), and the compiled
    call (aot_eager: the traced aten graph run eagerly) is bit-identical to eager. Inductor
    fuses the arithmetic (FMA, its own log), so it agrees within float tolerance; the GPU
    run checks it."""
    noise = _draw(CASE)
    embed = CASE.class_embed()

    def call(targets, embed, noise, fix_upstream):
        return fast(targets, 5, 9, embed, noise=noise, max_gt=7, validate=False, fix_upstream=fix_upstream)

    for draw in (noise, None):
        for fix in (False, True):
            torch._dynamo.reset()
            explained = torch._dynamo.explain(call)(CASE.fresh_targets(), embed, draw, fix)
            assert explained.graph_break_count == 0, explained.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        _assert_same(
            compiled(CASE.fresh_targets(), embed, noise, False), call(CASE.fresh_targets(), embed, noise, False)
        )


# --- the fused draws (global RNG) ----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, CUDA])])
def test_fused_draws_have_upstreams_distributions(dtype, device):
    """Under the global RNG: flips at rate ratio/2, replacements over all of [0, C), each
    coordinate's sign fair, magnitudes in [0, 1) on positive copies and 1 + that on
    negative ones (which rounds to 2 in the dtype for a magnitude within half an ulp of 1,
    as upstream's rand + 1.0 does: in bfloat16, 1 + 255/256 is 2), the magnitude's mean
    1/2 (binomial / chi-square / z tests at alpha 1e-6)."""
    generator = torch.Generator(device=device).manual_seed(5)
    flip, replacement, rand_part = fast_module._draw(
        (6, 20000), 7, 3, 0.6, 1.0, torch.device(device), dtype, generator, False
    )
    flip, replacement, rand_part = flip.cpu(), replacement.cpu(), rand_part.cpu()
    n = flip.numel()
    assert stats.binomtest(int(flip.sum()), n, 0.3).pvalue > 1e-6
    assert set(replacement.unique().tolist()) == set(range(7))
    assert stats.chisquare(torch.bincount(replacement.flatten(), minlength=7).tolist()).pvalue > 1e-6
    assert rand_part.dtype == dtype and rand_part.shape == (6, 2, 20000, 2)
    signs = (rand_part > 0).sum().item()
    assert stats.binomtest(signs, rand_part.numel(), 0.5).pvalue > 1e-6
    magnitude = rand_part.abs().double()
    positive, negative = magnitude[0::2], magnitude[1::2]
    assert positive.min() >= 0 and positive.max() < 1
    assert negative.min() >= 1 and negative.max() <= 2
    # the mean within 5 standard errors of 1/2, plus the dtype's quantisation: in bfloat16
    # a uniform on [0, 1) lies on a grid of step 2^-8 (upstream's torch.rand too), whose
    # mean is 1/2 - 2^-9, and CUDA rounds its float uniform to that grid
    for part in (positive, negative - 1):
        slack = 5 * part.std() / part.numel() ** 0.5 + torch.finfo(dtype).eps
        assert abs(part.mean() - 0.5) < slack, (dtype, part.mean())


def test_the_generator_is_honoured():
    """Two calls with equal generators agree; the global RNG is left untouched."""
    embed = CASE.class_embed()
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = fast(CASE.fresh_targets(), 5, 9, embed, generator=torch.Generator().manual_seed(3))
    b = fast(CASE.fresh_targets(), 5, 9, embed, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), before)
    _assert_same(a, b)


# --- fix_upstream: each fix holds with the switch and not without -------------------------


def test_fix_a_boxes_are_logits_at_scale_zero():
    """(a) at box_noise_scale 0 the fixed builder returns inverse_sigmoid of what upstream
    returns (bit for bit), where upstream returns box space."""
    case = CASE.with_config(box_noise_scale=0.0)
    noise = _draw(case)
    upstream = case.call(reference, noise=noise)[1]
    assert torch.equal(case.call(fast, noise=noise)[1], upstream)
    assert torch.equal(case.call(fast, noise=noise, fix_upstream=True)[1], inverse_sigmoid(upstream))
    assert not torch.equal(inverse_sigmoid(upstream), upstream)


def _crossing_case():
    """One box (0.5, 0.5, 0.2, 0.2), ratio 0, scale 1, and a draw whose every coordinate
    moves by magnitude 0.5 with signs (+, +, -, -): negatives' corners cross
    (x1 = 0.4 + 0.15 > x2 = 0.6 - 0.15), positives' do not (0.45 < 0.55)."""
    case = CdnCase(
        ({"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])},),
        num_classes=2,
        num_queries=0,
        num_denoising=4,
        label_noise_ratio=0.0,
        box_noise_scale=1.0,
    )
    rows = 2 * 1 * 4
    sign = torch.tensor([1.0, 1.0, -1.0, -1.0]).expand(1, rows, 4).clone()
    noise = NoiseDraw(None, None, sign, torch.full((1, rows, 4), 0.5))
    return case, noise


def test_fix_b_crossed_corners_span_a_box_instead_of_collapsing():
    """(b) negatives whose corners crossed: upstream collapses the side to ~1e-5; fixed,
    the box is the one the two corners span (side 0.1, same centre). Rows that did not
    cross are bit-identical to upstream's."""
    case, noise = _crossing_case()
    upstream = case.call(reference, noise=noise)[1].sigmoid()
    fixed = case.call(fast, noise=noise, fix_upstream=True)[1].sigmoid()
    negative = CdnLayout.for_targets(case.targets, 4, 0).row_is_negative()
    assert torch.allclose(upstream[0, negative, 2:], torch.tensor(1e-5), rtol=0.01)
    assert torch.allclose(fixed[0, negative, 2:], torch.tensor(0.1), atol=1e-6)
    assert torch.allclose(fixed[0, negative, :2], torch.tensor(0.5), atol=1e-6)
    assert torch.equal(
        case.call(fast, noise=noise, fix_upstream=True)[1][0, ~negative],
        case.call(reference, noise=noise)[1][0, ~negative],
    )
    assert torch.equal(case.call(fast, noise=noise)[1], case.call(reference, noise=noise)[1])


def test_fix_c_a_replaced_label_is_always_another_class():
    """(c) with 2 classes and ratio 1, every flipped real row carries the other class
    under the fix; upstream keeps the label on about half of them."""
    case = CdnCase(
        make_targets((4, 0, 7, 2), seed=3, num_classes=2), num_classes=2, num_queries=9, label_noise_ratio=1.0, seed=7
    )
    noise = _draw(case)
    embed = torch.nn.Embedding(3, 3, padding_idx=2)
    with torch.no_grad():
        embed.weight.copy_(torch.eye(3))  # one-hot rows: the label is the argmax
    layout = CdnLayout.for_targets(case.targets, case.num_denoising, case.num_queries)
    flipped = noise.label_flip & layout.real_rows()
    original = torch.full((case.batch_size, layout.max_gt), 2)
    for i, t in enumerate(case.targets):
        original[i, : len(t["labels"])] = t["labels"]
    original = original[:, layout.row_slot()]

    def kept(**kwargs):
        labels = case.call(fast, class_embed=embed, noise=noise, **kwargs)[0].argmax(-1)
        return int((flipped & (labels == original)).sum())

    assert flipped.sum() > 20
    assert kept(fix_upstream=True) == 0
    assert kept() > 0


def test_fix_c_replacements_are_uniform_over_the_other_classes():
    """(c) under the global RNG, the fixed builder replaces label 0 by 1 and 2 equally often
    (3 classes, chi-square at alpha 1e-6), and never by 0."""
    targets = [
        {"labels": torch.zeros(50, dtype=torch.int64), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(50, 1)}
    ]
    embed = torch.nn.Embedding(4, 4, padding_idx=3)
    with torch.no_grad():
        embed.weight.copy_(torch.eye(4))
    torch.manual_seed(0)
    labels = torch.cat([fast(targets, 3, 0, embed, 100, 1.0, 1.0, fix_upstream=True)[0].argmax(-1) for _ in range(40)])
    counts = torch.bincount(labels.flatten(), minlength=4)
    assert counts[3] == 0
    assert stats.chisquare(counts[1:3].tolist()).pvalue > 1e-6


@pytest.mark.parametrize("advisory", ["box_output_space", "no_collapsed_boxes", "label_flip_rate_is_ratio"])
def test_each_fix_holds_as_the_suite_checks_it(advisory):
    """(a), (b), (c) as the suite's advisories: enforced on fast-fixed (it declares
    fixes_advisories) and violated by fast, which stays upstream-compatible."""
    assert evaluate(BY_NAME[advisory], load_implementation("fast-fixed")).status == "pass"
    assert evaluate(BY_NAME[advisory], load_implementation("fast"), RunOptions(strict=True)).status == "fail"


def test_builtin_names():
    plain, fixed = load_implementation("fast"), load_implementation("fast-fixed")
    assert plain.accepts_noise and not plain.fixes_advisories
    assert fixed.accepts_noise and fixed.fixes_advisories and fixed.fn.keywords == {"fix_upstream": True}
    ddp, fixed_ddp = load_implementation("fast-ddp"), load_implementation("fast-fixed-ddp")
    assert ddp.fn.keywords == {"empty_batch": "dummy"} and not ddp.fixes_advisories
    assert fixed_ddp.fn.keywords == {"fix_upstream": True, "empty_batch": "dummy"} and fixed_ddp.fixes_advisories


@pytest.mark.parametrize("fix_upstream", [False, True])
def test_dummy_group_for_an_all_empty_batch(fix_upstream):
    """empty_batch="dummy": one masked padding pair per image from class_embed (so a
    backward pass reaches it, zero on the padding row), no positives, the object queries
    blind to it; with or without an injected draw; four Nones by default."""
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    case = CdnCase(targets=(empty, empty, empty), num_classes=4, num_queries=5, num_denoising=10, seed=3)
    assert case.call(fast) == (None, None, None, None)
    class_embed = case.class_embed()
    with torch.enable_grad():
        query_class, boxes, mask, meta = fast(*case.args(class_embed), fix_upstream=fix_upstream, empty_batch="dummy")
    assert query_class.shape == (3, 2, case.embed_dim) and bool((query_class == class_embed.weight[4]).all())
    query_class.sum().backward()
    assert class_embed.weight.grad is not None and not bool(class_embed.weight.grad.any())
    assert boxes.shape == (3, 2, 4) and bool(torch.isfinite(boxes).all())
    assert mask.shape == (7, 7) and bool(mask[2:, :2].all()) and not bool(mask[:2].any())
    assert meta["dn_num_split"] == [2, 5] and meta["dn_num_group"] == 1
    assert [len(p) for p in meta["dn_positive_idx"]] == [0, 0, 0]
    injected = fast(*case.args(), noise=draw_noise(3, 2, 4, 0.5, 1.0), empty_batch="dummy", fix_upstream=fix_upstream)
    assert torch.equal(injected[1], boxes) and torch.equal(injected[2], mask)
    with pytest.raises(ValueError, match="empty_batch"):
        fast(*case.args(), empty_batch="maybe")


# --- CUDA ----------------------------------------------------------------------------------


@pytest.mark.cuda
@CUDA
def test_cuda_bit_identical_to_the_reference_on_cuda():
    for seed in range(60):
        case = _random_case(seed, device="cuda")
        _assert_same(*_both(case), note=repr(case))


@pytest.mark.cuda
@CUDA
def test_cuda_agrees_with_cpu_under_one_draw():
    """A draw made on the CPU, moved to CUDA: the mask, labels (so the embedding rows),
    positive indices, group count and split are equal; boxes within the dtype's
    tolerance (CUDA's log and division may differ from the CPU's in the last ulp)."""
    from dnspec.contract.tolerances import tolerance_for

    for seed in range(60):
        case = _random_case(seed)
        if not _has_output(case):
            continue
        noise = _draw(case)
        embed = case.class_embed()
        on_cpu = case.call(fast, class_embed=embed, noise=noise)
        on_cuda = case.to("cuda").call(fast, class_embed=embed.cuda(), noise=noise.to("cuda"))
        for x in on_cuda[:3]:
            assert x.device.type == "cuda"
        assert all(x.device.type == "cuda" for x in on_cuda[3]["dn_positive_idx"])
        assert torch.equal(on_cuda[0].cpu(), on_cpu[0]) and torch.equal(on_cuda[2].cpu(), on_cpu[2])
        tol = tolerance_for(case.dtype).box
        assert torch.allclose(on_cuda[1].cpu().double().sigmoid(), on_cpu[1].double().sigmoid(), atol=tol, rtol=0), (
            repr(case)
        )
        for x, y in zip(on_cuda[3]["dn_positive_idx"], on_cpu[3]["dn_positive_idx"], strict=True):
            assert torch.equal(x.cpu(), y)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("max_gt", [None, 13])
def test_cuda_call_never_synchronises(max_gt):
    """torch.cuda.set_sync_debug_mode('error') raises on any host-device synchronisation:
    a call (validate=False) makes none, with the global RNG and with a draw."""
    case = _random_case(4, device="cuda").with_config(num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0)
    targets, embed, noise = case.fresh_targets(), case.class_embed(), _draw(case, device="cuda")
    fast(targets, case.num_classes, 9, embed, validate=False, max_gt=max_gt)  # warm the caches
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fast(targets, case.num_classes, 9, embed, validate=False, max_gt=max_gt)
        fast(targets, case.num_classes, 9, embed, noise=noise, validate=False, max_gt=max_gt)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
@CUDA
def test_cuda_graph_capture_given_max_gt():
    """With max_gt the call is captured in a CUDA graph; replaying it reproduces the eager
    outputs under the same draw."""
    case = CASE.to("cuda")
    targets, embed, noise = case.fresh_targets(), case.class_embed(), _draw(CASE).to("cuda")
    kwargs = dict(noise=noise, max_gt=7, validate=False)
    with torch.no_grad():
        expected = fast(targets, 5, 9, embed, **kwargs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fast(targets, 5, 9, embed, **kwargs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = fast(targets, 5, 9, embed, **kwargs)
        graph.replay()
        torch.cuda.synchronize()
    _assert_same(captured, expected)


@pytest.mark.cuda
@CUDA
def test_cuda_inductor_compile_agrees():
    """torch.compile(fullgraph=True) with inductor on CUDA: labels, mask and indices equal,
    boxes within float32 tolerance of eager under the same draw."""
    case = CASE.to("cuda")
    targets, embed, noise = case.fresh_targets(), case.class_embed(), _draw(CASE).to("cuda")

    def call(targets, embed, noise):
        return fast(targets, 5, 9, embed, noise=noise, max_gt=7, validate=False)

    torch._dynamo.reset()
    compiled = torch.compile(call, fullgraph=True)
    with torch.no_grad():
        got, expected = compiled(targets, embed, noise), call(targets, embed, noise)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[2], expected[2])
    assert torch.allclose(got[1], expected[1], atol=1e-5, rtol=1e-6)
