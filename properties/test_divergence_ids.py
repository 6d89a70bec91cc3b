"""Stable divergence ids (issue 18 part 1): ``<kind>@<regimes>``, independent of file paths,
line numbers, seeds and example values, printed in the verdict's DIVERGENCE line and carried
by every report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dnspec.cli import main
from dnspec.running.divergences import HANGS, RAISES, VIOLATES, Divergence, Finding, Signature, divergence_id

TREE = Path(__file__).parent / "repo_fixtures" / "rtdetr_fork"
DFINE = "src/zoo/rtdetr/denoising_dfine.py:get_contrastive_denoising_training_group"
RUN = ["--profile", "ci", "--max-examples", "8", "--jobs", "1", "--only", "boxes", "structure"]
RUN += ["--regime", "common", "box_noise_scale_0"]


@pytest.mark.parametrize(
    "kind, key, sets, expected",
    [
        (VIOLATES, "boxes.crossed", [frozenset()], "boxes.crossed@common"),
        (
            RAISES,
            "UnboundLocalError@denoising.py:97",
            [frozenset({"box_noise_scale_0"})],
            "raises:UnboundLocalError@box_noise_scale_0",
        ),
        (
            RAISES,
            "IndexError@other_file.py:12",
            [frozenset({"one_class", "batch_of_one"})],
            "raises:IndexError@batch_of_one+one_class",
        ),
        (
            RAISES,
            "IndexError",
            [frozenset({"tiny_box"}), frozenset({"border_box"})],
            "raises:IndexError@border_box+tiny_box",
        ),
        (HANGS, "timeout", [frozenset()], "hangs@common"),
        (RAISES, "worker process died", [frozenset({"tiny_box"})], "died:crash@tiny_box"),
        (RAISES, "died:SIGSEGV", [frozenset()], "died:SIGSEGV@common"),
    ],
)
def test_the_id_is_kind_at_sorted_regimes(kind, key, sets, expected):
    assert divergence_id(kind, key, sets) == expected


def test_a_divergence_id_reads_its_findings_minimal_regimes():
    signature = Signature(RAISES, "UnboundLocalError@a.py:3")
    divergence = Divergence(
        1,
        signature,
        [
            Finding("structure", signature, "m", call_regimes=frozenset(r))
            for r in ({"box_noise_scale_0", "batch_of_one"}, {"box_noise_scale_0"})
        ],
    )
    assert divergence.id == "raises:UnboundLocalError@box_noise_scale_0"


def _fork(tmp_path: Path, name: str, pad_lines: int = 0) -> Path:
    root = tmp_path / name
    shutil.copytree(TREE, root)
    (root / "pyproject.toml").unlink()  # its [tool.dnspec] accepts both divergences: this test wants them
    if pad_lines:  # lines inserted above the raising line (and above everything else)
        path = root / "src/zoo/rtdetr/denoising_dfine.py"
        text = path.read_text()
        head, _, tail = text.partition("    if num_denoising <= 0:")
        path.write_text(head + "    # moved\n" * pad_lines + "    if num_denoising <= 0:" + tail)
    return root


def _ids(capsys, root: Path, monkeypatch, *extra) -> tuple[list[str], list[str], str]:
    monkeypatch.chdir(root)
    code = main(["verify", DFINE, *RUN, "--report", "r.json", *extra])
    out = capsys.readouterr().out
    assert code == 1
    report = json.loads((root / "r.json").read_text())
    return [d["id"] for d in report["divergences"]], [d["name"] for d in report["divergences"]], out


def test_the_same_bugs_give_the_same_ids_under_other_seeds_and_after_lines_move(tmp_path, capsys, monkeypatch):
    ids_1, names_1, out = _ids(capsys, _fork(tmp_path, "a"), monkeypatch, "--seed", "1")
    assert ids_1 == ["boxes.crossed@common", "raises:UnboundLocalError@box_noise_scale_0"]
    for shown in ids_1:  # printed in the DIVERGENCE line
        assert any(line.startswith("DIVERGENCE ") and line.endswith(f"[id {shown}]") for line in out.splitlines())
    ids_2, _, _ = _ids(capsys, _fork(tmp_path, "b"), monkeypatch, "--seed", "2")
    ids_3, names_3, _ = _ids(capsys, _fork(tmp_path, "c", pad_lines=7), monkeypatch, "--seed", "3")
    assert ids_2 == ids_1 and ids_3 == ids_1
    assert names_3 != names_1  # the raising line did move: the signature names it, the id does not


def test_every_report_carries_the_ids(tmp_path, capsys, monkeypatch):
    root = _fork(tmp_path, "r")
    monkeypatch.chdir(root)
    reports = ["r.md", "r.xml", "r.html"]
    main(["verify", DFINE, *RUN, "--no-shrink", *(a for r in reports for a in ("--report", r))])
    capsys.readouterr()
    for name in reports:
        text = (root / name).read_text()
        assert "boxes.crossed@common" in text and "raises:UnboundLocalError@box_noise_scale_0" in text, name


def test_the_matrix_names_divergences_by_id():
    from dnspec.reports.conformance import matrix_markdown
    from dnspec.reports.records import DivergenceRecord, OutcomeRecord, VerifyReport

    report = VerifyReport(spec="x", compatibility_level="departs")
    report.outcomes = [OutcomeRecord("boxes", "boxes", "boxes", "contract", "", "fail", divergences=[1])]
    report.divergences = [DivergenceRecord(1, "boxes.crossed", VIOLATES, "crossed", regimes=[[]])]
    assert "`boxes.crossed@common`" in matrix_markdown([report])


def test_a_report_written_before_ids_gets_the_same_id_when_read_back():
    from dnspec.reports.records import VerifyReport

    data = {
        "spec": "x",
        "divergences": [
            {"number": 1, "name": "IndexError@a.py:3", "kind": RAISES, "title": "t", "regimes": [["one_class"]]}
        ],
    }
    assert VerifyReport.from_dict(data).divergences[0].id == "raises:IndexError@one_class"
