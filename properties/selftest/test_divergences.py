"""One bug, one line: a bug that lives in one regime (or one kind of row) is reported as
one divergence there, and every other property is still judged everywhere else.

Each test runs the whole verify pipeline (:func:`dnspec.running.runner.run`, shrinking included)
on one variant of broken_variants.py and checks the divergences it reports.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from dnspec.checks.suite import GENERATED_KINDS, RunOptions
from dnspec.contract.conventions import DUMMY_GROUP, EMPTY_GROUP, FOUR_NONES, META_ONLY
from dnspec.generation.regimes import COMMON, NAMES
from dnspec.running.runner import run

from .broken_variants import BROKEN, CONTROLS
from .test_properties_catch_bugs import SEED

OPTIONS = RunOptions(max_examples=30, seed=SEED, time_limit_s=60.0)


@pytest.fixture(scope="module")
def results():
    cache = {}

    def result(name):
        if name not in cache:
            impl = BROKEN[name][0] if name in BROKEN else CONTROLS[name]
            cache[name] = run(impl, OPTIONS)
        return cache[name]

    return result


def _generated(result):
    return [o for o in result.outcomes if o.prop.kind in GENERATED_KINDS and o.status != "skip"]


def test_a_crash_at_box_noise_scale_0_is_one_divergence_in_that_regime_only(results):
    """RT-DETRv2/D-FINE-style: the box output is assigned only under
    ``if box_noise_scale > 0``. One divergence (the UnboundLocalError at one line), in
    box_noise_scale == 0 only; every property holds in every other regime, except those
    whose every call is noise-free; the other properties' lines say where."""
    result = results("boxes_only_when_noised")
    assert len(result.divergences) == 1, [d.name for d in result.divergences]
    divergence = result.divergences[0]
    assert divergence.signature.kind == "raises" and divergence.name.startswith("UnboundLocalError@broken_variants.py:")
    assert divergence.regime_sets == [frozenset({"box_noise_scale_0"})]
    assert divergence.example_shrunk and "box_noise_scale=0.0" in divergence.example
    for outcome in _generated(result):
        assert outcome.status == "fail" and outcome.divergences == [1], outcome
        if outcome.prop.forces:
            assert outcome.message.startswith("not judged: every call of this property is in box_noise_scale == 0")
            continue
        assert outcome.message == "holds except in box_noise_scale == 0 (divergence 1)", outcome.label
        assert set(outcome.regimes) == set(NAMES)
        assert [r for r, status in outcome.regimes.items() if status != "pass"] == ["box_noise_scale_0"], outcome.label
    statistical = [o for o in result.outcomes if o.prop.kind == "statistical"]
    assert statistical and all(o.status == "pass" for o in statistical)


def test_crossed_boxes_that_keep_their_width_are_one_divergence_on_crossed_rows(results):
    """D-FINE/DEIM-style ``input_query_bbox[input_query_bbox < 0] *= -1``: a crossed
    box keeps side |w| where RT-DETR's collapses. One divergence, on crossed rows
    (``boxes.crossed``), in the common regime; every other kind of row and every other
    property still judged and holding."""
    result = results("crossed_width_flipped")
    assert [d.name for d in result.divergences] == ["boxes.crossed"]
    divergence = result.divergences[0]
    assert divergence.in_common_regime
    assert set(divergence.labels) <= {"boxes", "injected_noise_matches_reference"}
    assert "came back reordered" in divergence.example_message and (
        "|w|" in divergence.example_message or "|h|" in divergence.example_message
    )
    failing = {o.label for o in result.outcomes if o.status == "fail"}
    assert failing == set(divergence.labels), failing
    boxes = next(o for o in result.outcomes if o.label == "boxes")
    assert boxes.message == "fails in the common regime (divergence 1)"
    assert boxes.regimes["box_noise_scale_0"] == "pass"


def test_mishandled_negative_num_denoising_is_caught_in_its_regime(results):
    """``if num_denoising == 0`` instead of ``<= 0``: a negative count crashes; found in
    num_denoising <= 0 (negative values are valid input), nowhere else. (The noise-free
    call crashes on another line, one that draws no noise: a second divergence, in the
    same regime.)"""
    result = results("off_only_at_zero")
    assert result.divergences
    for divergence in result.divergences:
        assert all("num_denoising_non_positive" in s for s in divergence.regime_sets), divergence.regimes_text
        assert "num_denoising=-" in divergence.example
    assert result.divergences[0].regime_sets == [frozenset({"num_denoising_non_positive"})]


@pytest.mark.parametrize("name", ["published_float32_buffer", "reference"])
def test_a_faithful_copy_conforms_and_is_bit_compatible(results, name):
    """RT-DETR's own dtype behaviour (float32 boxes for every input dtype) conforms, and
    with the same torch seed gives the reference's numbers: the compatibility line says so."""
    result = results(name)
    assert not result.divergences, [d.title for d in result.divergences]
    assert not [o.label for o in result.outcomes if o.status == "fail"]
    assert result.compatibility.startswith("bit-compatible with RT-DETR under the same torch seed")
    matches, compared = result.same_seed
    assert compared > 0 and matches == compared


def test_a_common_regime_bug_says_so(results):
    """A mask bug everywhere: its properties fail in the common regime."""
    result = results("object_queries_see_dn")
    mask = next(o for o in result.outcomes if o.label == "attention_mask")
    assert mask.message.startswith("fails in the common regime")
    assert mask.regimes[COMMON] == "fail"
    assert result.compatibility == "departs from RT-DETR (see divergences)"
    names = [d.name for d in result.divergences]
    assert "attention_mask.object_queries_see_dn" in names
    # the noise-free and injected differential checks see the same wrong mask: folded into it
    folded = next(d for d in result.divergences if d.name == "attention_mask.object_queries_see_dn")
    assert {"attention_mask", "noiseless_matches_reference", "injected_noise_matches_reference"} <= set(folded.labels)


# --- empty-batch conventions (dnspec.contract.conventions) ---------------------------------------------

CONVENTION_CONTROLS = {
    "reference": FOUR_NONES,
    "dummy_group_convention": DUMMY_GROUP,
    "meta_only_convention": META_ONLY,
    "empty_group_convention": EMPTY_GROUP,
}


@pytest.mark.parametrize("name", CONVENTION_CONTROLS)
def test_each_convention_conforms_and_is_named(results, name):
    """A correct copy using any of the forks' conventions conforms, its convention named;
    the DDP advisory holds for the conventions that keep class_embed in the graph."""
    result = results(name)
    assert not result.divergences, [d.title for d in result.divergences]
    assert result.conventions == {"empty_batch": CONVENTION_CONTROLS[name]}
    ddp = next(o for o in result.outcomes if o.prop.name == "empty_batch_in_graph")
    assert ddp.status == ("pass" if CONVENTION_CONTROLS[name] in (DUMMY_GROUP, EMPTY_GROUP) else "advisory")


@pytest.mark.parametrize("name", ["dummy_group_convention", "meta_only_convention", "empty_group_convention"])
def test_convention_rtdetr_makes_other_conventions_fail(name):
    impl = CONTROLS[name]
    result = run(impl, replace(OPTIONS, convention=FOUR_NONES), regimes=["all_images_empty"])
    assert [d.name for d in result.divergences] == ["structure.empty_batch.convention"]
    assert next(o for o in result.outcomes if o.label == "structure").status == "fail"


@pytest.mark.parametrize(
    "name, check",
    [
        ("dummy_visible_to_object_queries", "structure.empty_batch.dummy_group.visible"),
        ("dummy_row_listed_as_positive", "structure.empty_batch.dummy_group.positive_row"),
        ("meta_only_wrong_split", "structure.empty_batch.meta_only.split"),
    ],
)
def test_an_inconsistent_convention_is_caught_by_its_own_check(results, name, check):
    """Each broken convention is one divergence, named by the consistency check meant for
    it (not by a rule that would also reject a correct convention), in the all-empty
    regime only."""
    result = results(name)
    assert [d.name for d in result.divergences] == [check]
    assert result.divergences[0].regime_sets == [frozenset({"all_images_empty"})]


@pytest.mark.parametrize(
    "name, check",
    [
        ("detached_class_queries", "autograd.detached"),
        ("weight_lookup", "autograd.padding_row"),
        ("grad_under_no_grad", "autograd.grad_under_no_grad"),
    ],
)
def test_a_training_loop_bug_is_caught_by_its_own_check(results, name, check):
    """Forward values exactly right, so nothing but the autograd checks can see these."""
    result = results(name)
    assert [d.name for d in result.divergences] == [check]
    assert result.divergences[0].in_common_regime
