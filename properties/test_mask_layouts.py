"""Mask layouts (dnspec/contract/mask_layouts.py): RT-DETR's [T, T] bool mask, the per-head
masks nn.MultiheadAttention and scaled_dot_product_attention take, bool of either polarity
and additive float masks are read back slice by slice; forks written in each conform with
their convention named, and a broken slice in each is caught (properties/selftest/mask_variants.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from selftest.mask_variants import BROKEN, CORRECT

from dnspec.checks.suite import RunOptions
from dnspec.cli import main
from dnspec.contract import mask_layouts
from dnspec.contract.conventions import convention_lines
from dnspec.contract.layout import CdnLayout
from dnspec.running.runner import run

# the properties that read the mask (directly, compared with the reference, or across calls)
MASK_READERS = (
    "structure",
    "attention_mask",
    "determinism",
    "noiseless_matches_reference",
    "injected_noise_matches_reference",
    "device_agreement",
    "dtype_agreement",
    "no_grad_outputs",
)
OPTIONS = RunOptions(max_examples=10, seed=0, jobs=2)

LAYOUT = CdnLayout(counts=(2, 1), num_denoising=8, num_queries=3)  # G = 4, N = 16, T = 19
BS, T = LAYOUT.batch_size, LAYOUT.num_dn_rows + LAYOUT.num_queries
ORACLE = LAYOUT.attn_mask()


@pytest.mark.parametrize(
    "mask,convention",
    [
        (ORACLE, "tt.blocked"),
        (ORACLE[None].repeat(BS * 8, 1, 1), "bs_heads.blocked"),
        (~ORACLE[None].repeat(BS * 8, 1, 1), "bs_heads.may_attend"),
        ((~ORACLE)[None, None].expand(BS, 1, T, T), "bs_1.may_attend"),
        (ORACLE[None, None].expand(1, 1, T, T), "bs_1.blocked"),
        (torch.zeros(T, T).masked_fill(ORACLE, float("-inf")), "tt.additive"),
        (
            torch.zeros(BS, 2, T, T, dtype=torch.float16).masked_fill(ORACLE, torch.finfo(torch.float16).min),
            "bs_h.additive",
        ),
        (torch.zeros(BS * 2, T, T).masked_fill(ORACLE, -1e4), "bs_heads.additive"),
    ],
)
def test_every_layout_reads_back_as_the_oracle(mask, convention):
    read = mask_layouts.read_mask(mask, BS, T, ORACLE)
    assert isinstance(read, mask_layouts.ReadMask), read
    assert read.convention == convention and not read.ambiguous
    assert bool((read.slices == ORACLE).all()) and torch.equal(read.combined(), ORACLE)


def test_rtdetr_layout_keeps_its_polarity():
    """[T, T] is RT-DETR's layout: an inverted bool mask there is read as True = blocked
    (and is wrong everywhere), never as SDPA's polarity."""
    read = mask_layouts.read_mask(~ORACLE, BS, T, ORACLE)
    assert read.convention == "tt.blocked" and bool((read.slices != ORACLE).all())


def test_polarity_of_a_broken_mask_is_the_nearer_one_and_says_so():
    mask = ORACLE[None].repeat(BS, 1, 1)
    mask[0, 0, -1] = True  # one wrong entry read as True = blocked
    read = mask_layouts.read_mask(mask, BS, T, ORACLE)
    assert read.convention == "bs_heads.blocked"
    assert "ambiguous" in read.ambiguous and "1 entries wrong read as True = blocked" in read.ambiguous


@pytest.mark.parametrize(
    "mask,part",
    [
        (ORACLE.float(), "dtype"),  # 0/1 float: neither bool nor additive
        (torch.zeros(T, T).masked_fill(ORACLE, -1.0), "dtype"),  # -1 does not block
        (ORACLE.to(torch.uint8), "dtype"),
        (ORACLE[None].repeat(BS * 2 + 1, 1, 1), "shape"),  # first dim not a multiple of bs
        (ORACLE[:-1, :-1], "shape"),
        (ORACLE[None, None].expand(BS + 1, 1, T, T), "shape"),
        ([[False]], "type"),
    ],
)
def test_masks_in_no_layout_are_unreadable(mask, part):
    read = mask_layouts.read_mask(mask, BS, T, ORACLE)
    assert isinstance(read, mask_layouts.Unreadable) and read.part == part, read


@functools.cache
def _run(kind: str, name: str):
    impl = (CORRECT if kind == "correct" else BROKEN)[name][0]
    return run(impl, OPTIONS, names=MASK_READERS)


MASK_FORKS = [name for name, (_, mask, _) in CORRECT.items() if mask]


@pytest.mark.parametrize("name", MASK_FORKS)
def test_a_fork_in_each_mask_convention_conforms_and_is_named(name):
    _, convention, _ = CORRECT[name]
    result = _run("correct", name)
    assert not result.divergences, [f"{d.signature.key}: {d.representative.message}" for d in result.divergences]
    assert {o.status for o in result.outcomes} <= {"pass", "skip"}
    assert result.conventions["mask"] == convention
    assert f"mask convention: {mask_layouts.title(convention)}" in convention_lines(result.conventions)


MASK_BUGS = [name for name, (_, check) in BROKEN.items() if check.startswith(("attention_mask", "structure.mask"))]


@pytest.mark.parametrize("name", MASK_BUGS)
def test_a_broken_slice_or_a_mixed_layout_is_one_divergence(name):
    _, check = BROKEN[name]
    result = _run("broken", name)
    keys = [d.signature.key for d in result.divergences]
    assert keys == [check], [f"{d.signature.key}: {d.representative.message}" for d in result.divergences]


def test_the_rtdetr_mask_is_not_named():
    """RT-DETR's own convention adds no line to a verdict (outputs of RT-DETR copies keep theirs)."""
    assert convention_lines({"mask": "tt.blocked", "box_space_at_scale_0": "box"}) == []


ATTENTION_FORK = Path(__file__).parent / "repo_fixtures" / "attention_fork" / "models"


@pytest.mark.parametrize(
    "file,lines",
    [
        (
            "denoising_sdpa.py",
            [
                "mask convention: [bs, 1, T, T] (SDPA broadcast), bool, True = may attend (SDPA)",
                "box space: logit-space boxes, as at every other scale (fixes advisory box_output_space)",
            ],
        ),
        ("denoising_mha.py", ["mask convention: [bs*heads, T, T] (nn.MultiheadAttention), additive float"]),
    ],
)
def test_a_fork_file_in_its_attention_s_layout_conforms_with_the_convention_named(file, lines, capsys):
    code = main(
        ["verify", f"{ATTENTION_FORK / file}:get_contrastive_denoising_training_group", "--profile", "ci"]
        + ["--max-examples", "10", "--jobs", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert ": conforms (" in out
    for line in lines:
        assert line in out, out
