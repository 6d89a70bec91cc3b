"""One bug, one line (dnspec.running.divergences._merge_causes): a crash and the structure
divergence in exactly the same edge regimes are one divergence, and so is a cascade of
``unreadable_output`` after a structure divergence; each lists every property affected.
A crash in the common regime, or in other regimes than the structure divergence, stays
its own."""

from __future__ import annotations

from pathlib import Path

import torch

from dnspec.cli import main
from dnspec.generation.cases import CdnCase
from dnspec.running.divergences import RAISES, VIOLATES, Finding, Signature, classify

TREES = Path(__file__).parent / "repo_fixtures"


def _case(**config):
    one = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    return CdnCase(targets=(one, one), num_classes=3, num_queries=2, **{"num_denoising": 4, **config})


OFF = _case(num_denoising=0)
NEGATIVE = _case(num_denoising=-3)
SCALE_0 = _case(box_noise_scale=0.0)
COMMON = _case()
CRASH = Signature(RAISES, "RuntimeError@denoising.py:30")
NONE_OUTPUTS = Signature(VIOLATES, "structure.none_outputs")


def test_a_crash_and_a_structure_divergence_in_the_same_edge_regime_are_one():
    findings = [
        Finding("structure", NONE_OUTPUTS, "expected (None, None, None, None)", OFF),
        Finding("structure", CRASH, "raised RuntimeError", NEGATIVE, where="denoising.py:30 in build"),
        Finding("determinism", CRASH, "raised RuntimeError", NEGATIVE, where="denoising.py:30 in build"),
    ]
    (divergence,) = classify(findings)
    assert divergence.id == "structure.none_outputs@num_denoising_non_positive"
    assert divergence.labels == ["structure", "determinism"]
    assert "it raises RuntimeError at denoising.py:30 in build" in divergence.title


def test_a_crash_elsewhere_stays_its_own_divergence():
    in_common = [Finding("structure", NONE_OUTPUTS, "none", OFF), Finding("boxes", CRASH, "raised", COMMON)]
    assert len(classify(in_common)) == 2
    other_regime = [Finding("structure", NONE_OUTPUTS, "none", OFF), Finding("boxes", CRASH, "raised", SCALE_0)]
    assert len(classify(other_regime)) == 2


def test_unreadable_outputs_after_a_structure_divergence_are_folded_into_it():
    shape = Signature(VIOLATES, "structure.attn_mask.shape")
    findings = [
        Finding("structure", shape, "attn_mask has shape [2, 10, 10]", COMMON),
        Finding("attention_mask", Signature(VIOLATES, "attention_mask.unreadable_output"), "raised", COMMON),
        Finding("positive_indices", Signature(VIOLATES, "positive_indices.unreadable_output"), "raised", SCALE_0),
    ]
    (divergence,) = classify(findings)
    assert divergence.id == "structure.attn_mask.shape@common"
    assert divergence.labels == ["structure", "attention_mask", "positive_indices"]
    # without a structure divergence to go with, an unreadable output stays a divergence
    assert len(classify(findings[1:])) == 2


def test_an_unguarded_num_denoising_is_one_divergence(capsys):
    code = main(
        [
            "verify",
            f"{TREES / 'unguarded_fork' / 'denoising.py'}:get_contrastive_denoising_training_group",
            "--profile",
            "ci",
            "--max-examples",
            "10",
            "--only",
            "structure",
            "determinism",
            "--regime",
            "common",
            "num_denoising_non_positive",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    blocks = [line for line in out.splitlines() if line.startswith("DIVERGENCE ")]
    assert len(blocks) == 1, blocks
    assert blocks[0].endswith("[id structure.none_outputs@num_denoising_non_positive]")
    assert "raises RuntimeError" in out
