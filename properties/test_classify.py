"""dnspec.running.divergences.classify on hand-made findings: one signature is one divergence
across properties and regimes; a differential finding is folded into the divergence of
the property that checks its output directly (a shape into the structure check of that
shape); a divergence's regimes are the smallest regime sets its findings share."""

from __future__ import annotations

import torch

from dnspec.generation.cases import CdnCase
from dnspec.running.divergences import RAISES, VIOLATES, Finding, Signature, classify


def _case(**config):
    one = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    two = {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.4, 0.4, 0.2, 0.2]])}
    return CdnCase(targets=(one, two), num_classes=3, num_queries=2, num_denoising=4, **config)


COMMON = _case()
SCALE_0 = _case(box_noise_scale=0.0)
NOISE_FREE = _case(box_noise_scale=0.0, label_noise_ratio=0.0)


def test_one_crash_across_properties_and_regimes_is_one_divergence_in_its_smallest_regime():
    crash = Signature(RAISES, "UnboundLocalError@denoising.py:97")
    findings = [
        Finding("structure", crash, "raised", SCALE_0),
        Finding("boxes", crash, "raised", SCALE_0),
        Finding("noiseless_matches_reference", crash, "raised", NOISE_FREE),
    ]
    (divergence,) = classify(findings)
    assert divergence.labels == ["structure", "boxes", "noiseless_matches_reference"]
    assert divergence.regime_sets == [frozenset({"box_noise_scale_0"})] and not divergence.in_common_regime


def test_a_differential_finding_folds_into_the_direct_property_of_its_output():
    mask = Finding("attention_mask", Signature(VIOLATES, "attention_mask.object_queries_see_dn"), "leak", COMMON)
    diff = Finding(
        "noiseless_matches_reference",
        Signature(VIOLATES, "noiseless_matches_reference.attn_mask"),
        "differs",
        NOISE_FREE,
    )
    other = Finding(
        "noiseless_matches_reference",
        Signature(VIOLATES, "noiseless_matches_reference.dn_positive_idx"),
        "differs",
        NOISE_FREE,
    )
    divergences = classify([mask, diff, other])
    assert [d.name for d in divergences] == [
        "attention_mask.object_queries_see_dn",
        "noiseless_matches_reference.dn_positive_idx",
    ]
    assert divergences[0].labels == ["attention_mask", "noiseless_matches_reference"]


def test_a_differing_shape_folds_into_the_structure_check_of_that_shape():
    shape = Finding("structure", Signature(VIOLATES, "structure.input_query_class.shape"), "shape", COMMON)
    diff = Finding(
        "noiseless_matches_reference",
        Signature(VIOLATES, "noiseless_matches_reference.input_query_class.shape"),
        "shapes differ",
        NOISE_FREE,
    )
    (divergence,) = classify([shape, diff])
    assert divergence.labels == ["structure", "noiseless_matches_reference"]


def test_a_differential_finding_with_no_direct_divergence_stands_alone():
    diff = Finding(
        "injected_noise_matches_reference",
        Signature(VIOLATES, "injected_noise_matches_reference.input_query_bbox"),
        "differs",
        COMMON,
    )
    (divergence,) = classify([diff])
    assert divergence.name == "injected_noise_matches_reference.input_query_bbox" and divergence.in_common_regime


def test_common_regime_divergences_come_first():
    edge = Finding("structure", Signature(RAISES, "KeyError@x.py:1"), "raised", SCALE_0)
    common = Finding("boxes", Signature(VIOLATES, "boxes.negative"), "bound", COMMON)
    assert [d.name for d in classify([edge, common])] == ["boxes.negative", "KeyError@x.py:1"]
