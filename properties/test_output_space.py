"""The box space at box_noise_scale 0 (dnspec/contract/decode.py ``space_at_scale_0``): RT-DETR
returns box-space boxes there; a fork that returns ``logit(gt)`` (padding rows at
inverse_sigmoid(0)) fixes advisory box_output_space and conforms, with no padding,
ground-truth, differential or agreement divergence; a fork that mixes the two spaces, or
puts its padding rows in the other space, is caught (properties/selftest/mask_variants.py).
"""

from __future__ import annotations

import functools

import torch
from selftest.mask_variants import BROKEN, CORRECT

from dnspec.checks.suite import RunOptions
from dnspec.contract.boxes import inverse_sigmoid
from dnspec.contract.conventions import convention_lines
from dnspec.contract.decode import BOX, LOGIT, SPACE_TITLES, space_at_scale_0
from dnspec.running.runner import run

# the properties that read the boxes at scale 0, and the advisory the logit fork fixes
BOX_READERS = (
    "structure",
    "boxes",
    "determinism",
    "noiseless_matches_reference",
    "injected_noise_matches_reference",
    "device_agreement",
    "dtype_agreement",
    "box_output_space",
)
OPTIONS = RunOptions(max_examples=10, seed=0, jobs=2)

GT = torch.tensor([[[0.5, 0.4, 0.2, 0.3], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)  # one real row, one padding
REAL = torch.tensor([[True, False]])
PADDING = inverse_sigmoid(torch.zeros(4, dtype=torch.float64))


def test_box_space_is_told_from_logit_space():
    boxes = GT.clone()
    logits = torch.stack([torch.logit(GT[0, 0]), PADDING])[None]
    assert space_at_scale_0(boxes, GT, REAL) == BOX
    assert space_at_scale_0(logits, GT, REAL) == LOGIT
    assert space_at_scale_0(logits.float(), GT, REAL) == LOGIT  # in a narrower dtype too


def test_an_output_in_neither_space_is_not_told():
    logits_box_padding = torch.stack([torch.logit(GT[0, 0]), torch.zeros(4, dtype=torch.float64)])[None]
    assert space_at_scale_0(logits_box_padding, GT, REAL) is None
    assert space_at_scale_0(torch.full_like(GT, float("nan")), GT, REAL) is None


@functools.cache
def _run(kind: str, name: str):
    impl = (CORRECT if kind == "correct" else BROKEN)[name][0]
    return run(impl, OPTIONS, names=BOX_READERS)


def test_logits_at_scale_0_conform_and_fix_the_advisory():
    result = _run("correct", "logits_at_scale_0")
    assert not result.divergences, [f"{d.signature.key}: {d.representative.message}" for d in result.divergences]
    status = {o.prop.name: o.status for o in result.outcomes}
    assert status.pop("box_output_space") == "pass"  # the advisory RT-DETR's builder gets is fixed
    assert set(status.values()) <= {"pass", "skip"}, status
    assert result.conventions["box_space_at_scale_0"] == LOGIT
    assert f"box space: {SPACE_TITLES[LOGIT]}" in convention_lines(result.conventions)


def test_mixed_spaces_are_one_divergence():
    _, check = BROKEN["space_by_batch"]
    divergences = _run("broken", "space_by_batch").divergences
    assert [d.signature.key for d in divergences] == [check], [
        f"{d.signature.key}: {d.representative.message} on {d.representative.case!r}" for d in divergences
    ]


def test_padding_in_the_other_space_is_caught_by_the_box_check():
    """Logit rows with box-space padding fit neither space: judged in RT-DETR's box space,
    the real rows are not their ground truth. (Compared as box-space values, the bfloat16
    logits may also disagree with the float64 ones beyond the box tolerance: a second line,
    dtype_agreement.input_query_bbox, for the same bug.)"""
    _, check = BROKEN["logits_with_box_padding"]
    divergences = _run("broken", "logits_with_box_padding").divergences
    keys = [d.signature.key for d in divergences]
    assert keys[0] == check and set(keys) <= {check, "dtype_agreement.input_query_bbox"}, [
        f"{d.signature.key}: {d.representative.message} on {d.representative.case!r}" for d in divergences
    ]
