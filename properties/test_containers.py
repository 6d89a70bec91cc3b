"""What a builder returns, read at the call boundary (dnspec.calling.outputs): RT-DETR's
4-tuple, and the containers forks return (a dataclass, a namedtuple, a mapping, a list, a
bare None for "no denoising") read as it and named as a convention; an output that
cannot be read is one divergence; a builder of another API (dnspec.calling.api_probe) is
exit 2 with one line."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import pytest

from dnspec.calling.api_probe import probe
from dnspec.calling.outputs import NO_DENOISING, NotFourOutputs, read_outputs
from dnspec.cli import main
from dnspec.implementations.specs import load_implementation

TREES = Path(__file__).parent / "repo_fixtures"
FUNCTION = "get_contrastive_denoising_training_group"
FOUR = ("class", "bbox", "mask", {"dn_num_split": [2, 3]})


@dataclass
class Renamed:
    query_class: object
    query_bbox_unact: object
    attn_mask: object
    dn_meta: object


@dataclass
class Unnamed:
    a: object
    b: object
    c: object
    d: object


Ported = namedtuple("Ported", "input_query_class input_query_bbox attn_mask dn_meta")
Shuffled = namedtuple("Shuffled", "dn_meta attn_mask query_bbox dn_query_class")


@pytest.mark.parametrize(
    "value, container",
    [
        (FOUR, ""),
        (list(FOUR), "a list of 4"),
        (Renamed(*FOUR), "dataclass Renamed(query_class, query_bbox_unact, attn_mask, dn_meta)"),
        (Unnamed(*FOUR), "dataclass Unnamed(a, b, c, d), in order"),
        (Ported(*FOUR), "namedtuple Ported(input_query_class, input_query_bbox, attn_mask, dn_meta)"),
        (
            Shuffled(FOUR[3], FOUR[2], FOUR[1], FOUR[0]),
            "namedtuple Shuffled(dn_meta, attn_mask, query_bbox, dn_query_class)",
        ),
        (
            {"dn_meta": FOUR[3], "attention_mask": FOUR[2], "input_query_bbox": FOUR[1], "query_class": FOUR[0]},
            "mapping dict(dn_meta, attention_mask, input_query_bbox, query_class)",
        ),
    ],
)
def test_each_container_is_read_as_rtdetrs_four_outputs_by_name_or_in_order(value, container):
    read = read_outputs(value)
    assert read.outputs == FOUR and read.container == container


def test_a_bare_none_is_four_nones():
    assert read_outputs(None).outputs == (None, None, None, None)
    assert read_outputs(None).container == NO_DENOISING


@pytest.mark.parametrize(
    "value, says",
    [
        (3, "returned int"),
        (FOUR[:3], "returned a tuple of 3"),
        ({"query_class": 1, "attn_mask": 2}, "mapping dict with fields query_class, attn_mask"),
        ({"query_class": 1, "input_query_class": 1, "query_bbox": 2, "attn_mask": 3, "dn_meta": 4}, "not RT-DETR's"),
    ],
)
def test_what_cannot_be_read_is_an_unreadable_output(value, says):
    with pytest.raises(NotFourOutputs) as raised:
        read_outputs(value)
    assert says in str(raised.value)


def test_a_dataclass_fork_conforms_with_its_container_named(capsys):
    code = main(
        [
            "verify",
            f"{TREES / 'dataclass_fork' / 'denoising.py'}:{FUNCTION}",
            "--profile",
            "ci",
            "--max-examples",
            "5",
            "--only",
            "structure",
            "boxes",
            "noiseless_matches_reference",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert (
        "output container: dataclass DenoisingOutput(query_class, query_bbox_unact, attn_mask, dn_meta), read as "
        "RT-DETR's 4-tuple" in out
    )
    assert "no denoising: a bare None, read as RT-DETR's four Nones" in out
    assert "compatibility: bit-compatible with RT-DETR under the same torch seed" in out


def test_an_output_that_cannot_be_read_is_one_divergence_across_properties(tmp_path, capsys):
    fork = tmp_path / "scalar_fork.py"
    fork.write_text(
        "def build(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5,"
        " box_noise_scale=1.0):\n    return 3\n"
    )
    code = main(
        [
            "verify",
            f"{fork}:build",
            "--profile",
            "ci",
            "--max-examples",
            "3",
            "--only",
            "structure",
            "boxes",
            "label_flip_rate",
            "box_magnitudes",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    blocks = [line for line in out.splitlines() if line.startswith("DIVERGENCE ")]
    assert len(blocks) == 1 and blocks[0].endswith("[id structure.outputs@common]"), blocks
    affected = next(line for line in out.splitlines() if line.strip().startswith("properties:"))
    for name in ("structure", "boxes", "label_flip_rate", "box_magnitudes"):
        assert name in affected
    assert "unreadable_output" not in out


# --- another API -------------------------------------------------------------------------

OTHER_APIS = """
import numpy as np
import torch
from dnspec.contract.reference import get_contrastive_denoising_training_group as ref

def numpy_builder(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    out = ref(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)
    return out[0].numpy(), out[1].numpy(), out[2].numpy(), out[3]

def hoi_builder(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    pairs = [torch.cat([t["sub_boxes"], t["obj_boxes"]], -1) for t in targets]
    return pairs

def quad_builder(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    q, b, m, meta = ref(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)
    return q, torch.cat([b, b], -1), m, meta

def crashing_builder(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    return {}["labels"]

def weight_tensor_builder(gt_meta, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    device = class_embed.device  # an embedding weight tensor, indexed by label, not an nn.Embedding
    return class_embed[torch.zeros(1, dtype=torch.int64, device=device)]

def attribute_bug_builder(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    return targets[0]["labels"].devise  # a typo: a bug, not another API
"""


@pytest.fixture()
def other_apis(tmp_path):
    path = tmp_path / "other_apis.py"
    path.write_text(OTHER_APIS)
    return path


@pytest.mark.parametrize(
    "name, says",
    [
        ("numpy_builder", "it returns numpy.ndarray where RT-DETR returns torch tensors"),
        ("hoi_builder", "it reads targets[i]['sub_boxes']"),
        ("quad_builder", "its box output has 8 values per row (quadrilaterals"),
        ("weight_tensor_builder", "it uses class_embed as a tensor ('Embedding' object has no attribute 'device')"),
    ],
)
def test_a_builder_of_another_api_is_found_by_one_probe_call(other_apis, name, says):
    pytest.importorskip("numpy")
    found = probe(load_implementation(f"{other_apis}:{name}"))
    assert found is not None and says in found.what


def test_rtdetrs_api_and_an_ordinary_crash_are_left_to_the_properties(other_apis):
    assert probe(load_implementation("reference")) is None
    assert probe(load_implementation(f"{other_apis}:crashing_builder")) is None  # KeyError 'labels': a bug, not an API
    assert (
        probe(load_implementation(f"{other_apis}:attribute_bug_builder")) is None
    )  # AttributeError, not on class_embed


@pytest.mark.parametrize("method", [None, "spawn"], ids=["default", "spawn"])
def test_an_oriented_box_fork_is_exit_2_with_one_line(capsys, monkeypatch, method):
    """On every start method: the probe runs in a worker that is not forked too (it was a
    closure, which did not pickle, and the failure read as "no other API")."""
    if method is not None:
        monkeypatch.setenv("DNSPEC_START_METHOD", method)
    code = main(["verify", f"{TREES / 'obb_fork' / 'denoising.py'}:{FUNCTION}", "--profile", "ci"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "DIVERGENCE" not in captured.err
    assert "not RT-DETR's API: it reads targets[i]['rboxes']" in captured.err
