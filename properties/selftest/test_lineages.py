"""Lineage contracts, lineage recognition and ``--against`` (dnspec.contract.lineages,
dnspec.running.against): each contract's switches catch the other lineage's builder with
exactly the one difference between them, a lineage's own builder is recognised without
being told, and a rewrite verified against its original is told apart from its bugs.

Each run goes through the whole pipeline (:func:`dnspec.running.runner.run`) on the builders of
lineage_variants.py and the D-FINE-pattern fixture of properties/repo_fixtures.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from dnspec.checks.suite import RunOptions
from dnspec.cli import main
from dnspec.contract import conventions, lineages
from dnspec.implementations.specs import load_implementation
from dnspec.running import accept
from dnspec.running import against as against_run
from dnspec.running.runner import run

from .broken_variants import CONTROLS
from .test_properties_catch_bugs import SEED

HERE = Path(__file__).parent
RTDETR = HERE.parent / "repo_fixtures" / "rtdetr_fork" / "src" / "zoo" / "rtdetr"
DFINE = f"{RTDETR / 'denoising_dfine.py'}:get_contrastive_denoising_training_group"
DFINE_FIXED = f"{RTDETR / 'denoising_dfine_fixed.py'}:get_contrastive_denoising_training_group"
VARIANTS = HERE / "lineage_variants.py"
OPTIONS = RunOptions(max_examples=10, seed=SEED, time_limit_s=60.0)
CRASH = "UnboundLocalError@"


def variant(name: str) -> str:
    return f"{VARIANTS}:{name}"


@pytest.fixture(scope="module")
def results():
    """``results(spec, contract=None, against=None)``: one run each, cached for the module."""
    cache = {}

    def result(spec, contract=None, against=None):
        key = (spec, contract, against)
        if key not in cache:
            impl = CONTROLS[spec] if spec in CONTROLS else load_implementation(spec)
            options = replace(OPTIONS, contract=contract)
            if against is None:
                cache[key] = run(impl, options)
            else:  # as dnspec verify MINE --against THEIRS does
                theirs = load_implementation(against)
                theirs_result = result(against, contract)
                cache[key] = run(impl, replace(options, against=theirs))
                shared, fixed = against_run.compare(
                    cache[key], theirs_result, impl, theirs, replace(options, against=theirs)
                )
                accepted = {d.number: accept.match(d.id, shared) for d in cache[key].divergences}
                cache[key].known = {number: entry.reason for number, entry in accepted.items() if entry}
                cache[key].shared, cache[key].fixed = shared, fixed
        return cache[key]

    return result


def names(result) -> list[str]:
    return [d.name for d in result.divergences]


# --- the contracts ------------------------------------------------------------------------


def test_every_contract_is_listed_with_how_it_differs(capsys):
    assert main(["contracts"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == list(lineages.NAMES) == ["rtdetr", "rtdetrv2", "dfine", "deim"]
    assert "crossed negatives keep |w| and |h|" in out[2] and "crossed negatives keep |w| and |h|" in out[3]
    assert "dummy group" in out[1]


def test_a_contract_per_spec_in_the_matrix_and_unknown_names_say_so():
    assert lineages.split_spec("pkg.mod:fn@dfine") == ("pkg.mod:fn", "dfine")
    assert lineages.split_spec("path/a@b.py:fn") == ("path/a@b.py:fn", None)
    with pytest.raises(lineages.UnknownContract, match="known: rtdetr, rtdetrv2, dfine, deim"):
        lineages.get("yolo")


def test_each_lineage_reference_answers_an_all_empty_batch_with_its_convention():
    import torch

    from dnspec.generation.cases import CdnCase

    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    case = CdnCase(targets=(empty, empty), num_classes=3, num_queries=4, num_denoising=10)
    for contract in lineages.CONTRACTS.values():
        outputs = contract.reference(*case.args())
        assert conventions.recognise(outputs, case) == conventions.Recognised(contract.empty_batch), contract.name


def test_the_dfine_pattern_has_one_divergence_under_its_contract_the_scale_0_crash(results):
    result = results(DFINE, "dfine")
    assert len(result.divergences) == 1 and names(result)[0].startswith(CRASH), names(result)
    assert result.divergences[0].regime_sets == [frozenset({"box_noise_scale_0"})]
    assert result.compatibility == "departs from D-FINE's builder (see divergences)"
    skipped = next(o for o in result.outcomes if o.label == "no_collapsed_boxes")
    assert skipped.status == "skip" and skipped.message.startswith("part of contract dfine")


def test_with_the_crash_fixed_it_conforms_to_dfine_and_is_bit_compatible_with_its_builder(results):
    result = results(DFINE_FIXED, "dfine")
    assert not result.divergences and not [o.label for o in result.outcomes if o.status == "fail"]
    assert result.compatibility.startswith("bit-compatible with D-FINE's builder under the same torch seed")


def test_the_dfine_pattern_fails_rtdetr_with_exactly_boxes_crossed_and_is_recognised(results):
    """Without --contract: RT-DETR's contract (any known empty-batch convention), exactly
    the crossed rows; the verdict names the lineage it is bit-compatible with."""
    result = results(DFINE_FIXED)
    assert names(result) == ["boxes.crossed"]
    assert "--contract dfine or deim" in result.divergences[0].example_message
    assert result.compatibility == (
        "departs from RT-DETR (see divergences); bit-compatible with D-FINE's builder (crossed negatives keep |w|; "
        "an all-empty batch gets meta only (D-FINE))"
    )
    assert {n for n, (same, compared) in result.lineages.items() if same == compared} == {"dfine"}


def test_an_rtdetr_faithful_builder_fails_dfine_with_that_difference_reversed(results):
    """RT-DETR's boxes with D-FINE's empty-batch answer: under dfine, exactly
    boxes.crossed, now for collapsing; RT-DETR's own builder also for its four Nones
    (the convention dfine requires), and under deim (four Nones) exactly boxes.crossed."""
    result = results("meta_only_convention", "dfine")
    assert names(result) == ["boxes.crossed"]
    assert "collapsed to side" in result.divergences[0].example_message
    assert "under contract dfine (D-FINE's builder) crossed negatives keep" in result.divergences[0].example_message
    assert sorted(names(results("reference", "dfine"))) == ["boxes.crossed", "structure.empty_batch.convention"]
    assert names(results("reference", "deim")) == ["boxes.crossed"]


def test_a_deim_pattern_builder_and_the_reference_are_named_by_their_lineage(results):
    deim = results(variant("deim_pattern"))
    assert "; bit-compatible with DEIM's builder (crossed negatives keep |w|)" in deim.compatibility
    assert "D-FINE" not in deim.compatibility  # its four Nones tell it from D-FINE's
    reference = results("reference")
    assert reference.compatibility.startswith("bit-compatible with RT-DETR under the same torch seed")
    assert "also with" not in reference.compatibility


def test_rtdetrv2s_dummy_group_is_its_contract(results):
    result = results("dummy_group_convention", "rtdetrv2")
    assert not result.divergences
    assert next(o for o in result.outcomes if o.label == "empty_batch_in_graph").status == "skip"
    assert result.compatibility.startswith("bit-compatible with RT-DETRv2's builder under the same torch seed")


# --- --against ----------------------------------------------------------------------------


def test_a_loop_free_rewrite_is_bit_compatible_with_its_original_and_shares_its_crash(results):
    result = results(variant("dfine_loop_free"), "dfine", against=DFINE)
    assert len(result.divergences) == 1 and names(result)[0].startswith(CRASH)
    assert result.known == {1: f"shared with {DFINE} (its divergence 1, {results(DFINE, 'dfine').divergences[0].name})"}
    assert result.compatibility.startswith(f"bit-compatible with {DFINE} under the same torch seed")
    assert result.fixed == []


def test_the_rewrite_with_a_mask_bug_has_exactly_that_one_new_divergence(results):
    result = results(variant("dfine_loop_free_mask_bug"), "dfine", against=DFINE)
    new = [d.name for d in result.divergences if d.number not in result.known]
    assert new == ["attention_mask.object_queries_see_dn"]
    assert result.compatibility == f"departs from {DFINE} (see divergences)"


def test_a_rewrite_that_draws_in_another_order_has_the_same_distributions(results):
    result = results(variant("dfine_draws_reordered"), "dfine", against=DFINE)
    assert [d.number for d in result.divergences] == list(result.known)
    assert result.compatibility.startswith(f"same distributions as {DFINE}; the same torch seed gives other numbers")


def test_negatives_from_1_to_1_5_depart(results):
    result = results(variant("dfine_narrow_negatives"), "dfine", against=DFINE)
    new = [d.name for d in result.divergences if d.number not in result.known]
    assert new == ["box_magnitudes"]
    assert result.compatibility.startswith(f"departs from {DFINE}")


def test_the_two_sample_tests_tell_the_narrow_negatives_apart_on_their_own():
    """The same-distribution test itself (not only the contract's KS test): negative
    magnitudes from [1, 1.5) against [1, 2) fail it, and a reordered draw passes it."""
    from dnspec.checks.agreement import two_sample_failures

    theirs = load_implementation(DFINE)
    failures = two_sample_failures(load_implementation(variant("dfine_narrow_negatives")), theirs, 7)
    assert [f.split(":")[0] for f in failures] == ["box-noise magnitudes on negative rows"]
    assert two_sample_failures(load_implementation(variant("dfine_draws_reordered")), theirs, 7) == []


def test_a_fix_of_theirs_is_reported_not_failed(results):
    """The fixed copy against the crashing fixture: where THEIRS raises it is judged by
    the contract alone, and the crash THEIRS has is reported as fixed."""
    result = results(DFINE_FIXED, "dfine", against=DFINE)
    assert not result.divergences
    assert len(result.fixed) == 1 and result.fixed[0].startswith("1 (UnboundLocalError@denoising_dfine.py:")
    assert result.against_raised > 0 and "raised, judged by the contract alone" in result.compatibility


def test_verify_against_prints_known_and_exits_0(capsys, tmp_path):
    """THEIRS' divergences are accepted for MINE through dnspec.running.accept: KNOWN in the
    printed verdict, the summary line, and every report format, like a config-accepted one."""
    reports = [tmp_path / f"r.{ext}" for ext in ("json", "xml", "html", "md")]
    code = main(
        ["verify", variant("dfine_loop_free"), "--against", DFINE, "--contract", "dfine"]
        + ["--profile", "ci", "--max-examples", "5", "--no-shrink", "--jobs", "1"]
        + [arg for path in reports for arg in ("--report", str(path))]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"compatibility: bit-compatible with {DFINE} under the same torch seed" in out
    assert any(line.startswith("KNOWN     structure") for line in out.splitlines())
    assert f"    accepted (--against {DFINE}): shared with {DFINE} (its divergence 1, {CRASH}" in out
    assert "conforms apart from 1 known divergence (" in out.splitlines()[-1]
    data = json.loads(reports[0].read_text())
    (divergence,) = data["divergences"]
    assert divergence["id"].startswith("raises:UnboundLocalError@")
    assert divergence["accepted"].startswith(f"shared with {DFINE} (its divergence 1, ")
    assert divergence["accepted_by"] == f"--against {DFINE}"
    assert next(o for o in data["outcomes"] if o["label"] == "structure")["status"] == "known"
    assert data["exit_code"] == 0 and data["fixed"] == []
    junit = reports[1].read_text()
    assert f"KNOWN {divergence['id']}: shared with {DFINE}" in junit and "<failure" not in junit
    html = reports[2].read_text()
    assert "<b>KNOWN</b> (--against " in html
    markdown = reports[3].read_text()
    assert "Known divergences (accepted)" in markdown and f"Accepted (--against {DFINE}): shared with" in markdown


def test_a_shared_divergence_is_known_as_a_config_accepted_one_is(results):
    """The same report judged with the --against entries and with a config entry for the
    same id: the same statuses, the same summary; only the reason and source differ."""
    from dnspec.reports.records import DivergenceRecord, OutcomeRecord, VerifyReport
    from dnspec.reports.text import summary_line

    result = results(variant("dfine_loop_free"), "dfine", against=DFINE)

    def judged(entries):
        report = VerifyReport(spec="mine", compatibility="departs from RT-DETR (see divergences)")
        report.compatibility_level = "departs"
        report.divergences = [DivergenceRecord.from_divergence(d, "") for d in result.divergences]
        report.outcomes = [OutcomeRecord.from_outcome(o) for o in result.outcomes]
        accept.apply(report, entries)
        return report

    theirs = judged(result.shared)
    configured = judged([accept.Accepted(d.id, "we live with it", "pyproject.toml") for d in result.divergences])
    untouched = judged([])
    assert [o.status for o in theirs.outcomes] == [o.status for o in configured.outcomes]
    assert "known" in [o.status for o in theirs.outcomes] and "known" not in [o.status for o in untouched.outcomes]
    assert summary_line(theirs) == summary_line(configured) != summary_line(untouched)
    assert theirs.compatibility == configured.compatibility == "departs from RT-DETR: 1 known divergence"
    assert theirs.divergences[0].accepted_by == f"--against {DFINE}"


def test_the_docs_show_what_dnspec_contracts_prints():
    """docs/lineages.md's `dnspec contracts` block is that command's output today."""
    from dnspec.commands.contracts import lines

    docs = (HERE.parents[1] / "docs" / "lineages.md").read_text()
    block = docs.split("<!-- contracts: produced by the command in its first line -->", 1)[1].split(
        "<!-- /contracts -->"
    )[0]
    assert block.strip().splitlines()[1:-1] == ["$ dnspec contracts", *lines()]


def test_the_contracts_name_conventions_dnspec_knows():
    assert {lineages.FOUR_NONES, lineages.DUMMY_GROUP, lineages.META_ONLY} <= set(conventions.TITLES)
