"""Accepted divergences (issue 18 part 3): in a copy of a D-FINE-pattern fork outside the
repository, with ``[tool.dnspec]`` naming its SPEC and accepting its two divergences by id,
``dnspec verify`` passes and prints both KNOWN with their reasons, fails on exactly a new
one, and says FIXED for an accepted one that no longer happens; the JUnit file it writes is
valid against Jenkins' junit-10.xsd and reads back with junitparser."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dnspec import config
from dnspec.cli import main
from dnspec.running.accept import Accepted, accept_block, fixed, match

TREE = Path(__file__).parent / "repo_fixtures" / "rtdetr_fork"
BUILDER = "src/zoo/rtdetr/denoising_dfine.py"
SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "junit-10.xsd"
CROSSED = "boxes.crossed@common"
SCALE_0 = "raises:UnboundLocalError@box_noise_scale_0"
REASONS = {CROSSED: "D-FINE keeps |w| for crossed negatives on purpose", SCALE_0: "we never train with scale 0"}
PYPROJECT = f"""[project]
name = "my-dfine-fork"
version = "0"

[tool.dnspec]
spec = "{BUILDER}:get_contrastive_denoising_training_group"
profile = "ci"
accept = [
    {{ id = "{CROSSED}", reason = "{REASONS[CROSSED]}" }},
    {{ id = "{SCALE_0}", reason = "{REASONS[SCALE_0]}" }},
]
"""
QUICK = ["--max-examples", "10"]


# --- matching ---------------------------------------------------------------------------------


def test_an_id_without_regime_accepts_the_kind_anywhere_and_a_regime_only_there_and_narrower():
    anywhere, at_zero = Accepted("boxes.crossed", "r"), Accepted(SCALE_0, "r")
    assert match("boxes.crossed@tiny_box", [anywhere]) is anywhere
    assert match(SCALE_0, [at_zero]) is at_zero
    assert match("raises:UnboundLocalError@batch_of_one+box_noise_scale_0", [at_zero]) is at_zero
    assert match("raises:UnboundLocalError@batch_of_one", [at_zero]) is None  # a regime it does not name
    assert match("raises:UnboundLocalError@common", [at_zero]) is None
    assert match("raises:IndexError@box_noise_scale_0", [at_zero]) is None  # another kind
    assert match("boxes.crossed@common", [Accepted("boxes.crossed@common", "r")]) is not None
    assert match("boxes.crossed_more@common", [anywhere]) is None  # kinds are compared whole


def test_fixed_are_the_entries_that_accept_nothing():
    entries = [Accepted(CROSSED, "a"), Accepted(SCALE_0, "b"), Accepted("hangs", "c")]
    assert [e.id for e in fixed(entries, [SCALE_0])] == [CROSSED, "hangs"]
    assert fixed(entries, [CROSSED, SCALE_0, "hangs@tiny_box"]) == []


def test_the_counted_compatibility_line_keeps_its_oracle_and_what_follows():
    """accept.apply's line counts known divergences against the oracle the run had (RT-DETR,
    a lineage's builder, THEIRS), keeps what follows the counted part, and leaves a line
    that departs for another reason (THEIRS' distributions) alone."""
    from dnspec.running.accept import _departs_line

    theirs = "upstream.py:build"
    assert (
        _departs_line(f"departs from {theirs} (see divergences)", 2, 0) == f"departs from {theirs}: 2 known divergences"
    )
    assert _departs_line("departs from RT-DETR (see divergences); nearest: D-FINE", 1, 1) == (
        "departs from RT-DETR (see divergences): 1 new, 1 known; nearest: D-FINE"
    )
    once = _departs_line("departs from D-FINE's builder (see divergences)", 1, 0)
    assert once == "departs from D-FINE's builder: 1 known divergence"
    assert _departs_line(once, 0, 1) == "departs from D-FINE's builder (see divergences)"  # applied again
    other = f"departs from {theirs}: box-noise magnitudes on negative rows: p = 1e-9"
    assert _departs_line(other, 1, 0) == other


def test_the_accept_block_is_toml_the_configuration_reads_back(tmp_path):
    block = accept_block([CROSSED, SCALE_0], {CROSSED: 'keeps "|w|"'})
    (tmp_path / "pyproject.toml").write_text("[tool.dnspec]\n" + block + "\n")
    read = config.load(str(tmp_path / "pyproject.toml")).accept
    assert [(a.id, a.reason) for a in read] == [
        (CROSSED, 'keeps "|w|"'),
        (SCALE_0, "TODO: why this departure is accepted"),
    ]


# --- a fork outside the repository ------------------------------------------------------------


def _fork(tmp_path: Path, edit=None) -> Path:
    root = tmp_path / "my-fork"
    shutil.copytree(TREE, root)
    (root / "pyproject.toml").write_text(PYPROJECT)
    if edit:
        path = root / BUILDER
        old, new = edit
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
    return root


def _verify(root: Path, monkeypatch, capsys, *argv) -> tuple[int, str]:
    monkeypatch.chdir(root)
    code = main(["verify", *QUICK, *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out


def _headers(out: str, word: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(rf"{word} \d+: ", line)]


def test_accepted_divergences_print_known_with_their_reasons_and_pass(tmp_path, monkeypatch, capsys):
    root = _fork(tmp_path)
    code, out = _verify(root, monkeypatch, capsys, "--report", "d.xml", "--report", "d.json", "--report", "d.md")
    assert code == 0, out
    known = _headers(out, "KNOWN")
    assert len(known) == 2 and _headers(out, "DIVERGENCE") == []
    for divergence_id, reason in REASONS.items():
        assert any(line.endswith(f"[id {divergence_id}]") for line in known)
        assert f"accepted (pyproject.toml): {reason}" in out
    assert "compatibility: departs from RT-DETR: 2 known divergences" in out
    assert "FIXED" not in out
    data = json.loads((root / "d.json").read_text())
    assert {d["id"]: d["accepted"] for d in data["divergences"]} == REASONS
    assert data["exit_code"] == 0 and data["fixed"] == []
    markdown = (root / "d.md").read_text()
    assert "## Known divergences (accepted)" in markdown and "## Divergences\n" not in markdown
    _check_junit(root / "d.xml", failures=0)


def test_a_new_bug_in_the_mask_fails_with_exactly_that_divergence(tmp_path, monkeypatch, capsys):
    root = _fork(tmp_path, edit=("    attn_mask[num_dn:, :num_dn] = True\n", ""))
    code, out = _verify(root, monkeypatch, capsys, "--report", "d.xml")
    assert code == 1
    new = _headers(out, "DIVERGENCE")
    assert len(new) == 1 and new[0].endswith("[id attention_mask.object_queries_see_dn@common]"), new
    assert len(_headers(out, "KNOWN")) == 2
    assert "does NOT conform: 1 new divergence, apart from 2 known divergences" in out
    _check_junit(root / "d.xml", failures=None)


def test_a_fixed_divergence_says_remove_it_and_fails_only_under_strict_accept(tmp_path, monkeypatch, capsys):
    root = _fork(tmp_path, edit=("        query_bbox[query_bbox < 0] *= -1\n", ""))
    code, out = _verify(root, monkeypatch, capsys)
    assert code == 0
    assert f"FIXED: {CROSSED} no longer happens; remove it from accept (pyproject.toml)" in out.splitlines()
    assert len(_headers(out, "KNOWN")) == 1
    code, out = _verify(root, monkeypatch, capsys, "--strict-accept", "--only", "boxes", "structure")
    assert code == 1 and f"FIXED: {CROSSED}" in out
    # a run that could not have seen it (its property left out) does not call it fixed
    code, out = _verify(root, monkeypatch, capsys, "--strict-accept", "--only", "structure")
    assert code == 0 and "FIXED" not in out


def test_write_accept_then_baseline_and_accept_options(tmp_path, monkeypatch, capsys):
    root = _fork(tmp_path)
    (root / "pyproject.toml").write_text(PYPROJECT.split("accept = [")[0])  # nothing accepted yet
    code, out = _verify(root, monkeypatch, capsys, "--write-accept", "--report", "before.json")
    assert code == 1
    block = out[out.index("accept = [") :]
    (root / "pyproject.toml").write_text(PYPROJECT.split("accept = [")[0] + block)
    assert {a.id for a in config.load().accept} == set(REASONS)
    code, out = _verify(root, monkeypatch, capsys)
    assert code == 0 and len(_headers(out, "KNOWN")) == 2
    (root / "pyproject.toml").write_text(PYPROJECT.split("accept = [")[0])
    code, out = _verify(root, monkeypatch, capsys, "--baseline", "before.json")
    assert code == 0 and "accepted (--baseline before.json)" in out
    code, out = _verify(root, monkeypatch, capsys, "--accept", "boxes.crossed")
    assert code == 1 and len(_headers(out, "KNOWN")) == 1 and len(_headers(out, "DIVERGENCE")) == 1


def test_the_matrix_shows_known_cells_from_the_configuration(tmp_path, monkeypatch, capsys):
    root = _fork(tmp_path)
    monkeypatch.chdir(root)
    spec = f"{BUILDER}:get_contrastive_denoising_training_group"
    code = main(["matrix", spec, *QUICK, "--only", "boxes", "structure", "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith(f"| {spec}"))
    assert f"KNOWN: D1 `{CROSSED}`" in row and "**fail**" not in row, row


def _check_junit(path: Path, failures: int | None) -> None:
    """Valid against Jenkins' xunit junit-10.xsd, and read back by junitparser: known cells
    are skipped with their reason."""
    xmlschema = pytest.importorskip("xmlschema")
    junitparser = pytest.importorskip("junitparser")
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is not beside this clone (CI has ../shared)")
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(path))
    suites = junitparser.JUnitXml.fromfile(str(path))
    cases = [case for suite in suites for case in suite]
    skipped = [c for c in cases if any(isinstance(r, junitparser.Skipped) for r in c.result)]
    known = [c for c in skipped if any((r.message or "").startswith("KNOWN ") for r in c.result)]
    assert any(f"KNOWN {CROSSED}: {REASONS[CROSSED]}" in r.message for c in known for r in c.result)
    assert any(f"KNOWN {SCALE_0}: {REASONS[SCALE_0]}" in r.message for c in known for r in c.result)
    failed = [c for c in cases if any(isinstance(r, junitparser.Failure) for r in c.result)]
    if failures is not None:
        assert len(failed) == failures
    else:
        assert failed and all("attention_mask" in c.name or "noiseless" in c.name for c in failed), [
            c.name for c in failed
        ]


def test_fixed_is_judged_only_where_the_run_could_have_seen_it():
    from argparse import Namespace

    from dnspec.commands.verify_options import judged_fixed

    entries = [{"id": CROSSED}, {"id": "boxes.crossed"}, {"id": SCALE_0}]
    assert judged_fixed(entries, Namespace(regime=None), None) == entries
    assert [e["id"] for e in judged_fixed(entries, Namespace(regime=["common"]), None)] == [CROSSED]
    assert [e["id"] for e in judged_fixed(entries, Namespace(regime=None), ["boxes"])] == [CROSSED, "boxes.crossed"]
    assert judged_fixed(entries, Namespace(regime=None), ["structure"]) == []
