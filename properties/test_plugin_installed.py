"""The pytest plugin from an installed dnspec (issue 18 part 4): in a fork-shaped tree
outside the repository, with a pyproject.toml naming its SPEC and accepting its two
divergences, ``pytest --dnspec`` collects dnspec's property items with no test file there,
passes with the known ones xfailed (strict), fails on a new bug in the mask as one failed
item (the others that meet it are skipped, not judged), and ``-n auto`` gives the same outcome. pytest runs in a subprocess in that folder, so it imports dnspec as
installed (never this checkout: the folder is not under it and PYTHONPATH is cleared)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

junitparser = pytest.importorskip("junitparser")

REPO = Path(__file__).resolve().parents[1]
TREE = REPO / "properties" / "repo_fixtures" / "rtdetr_fork"
BUILDER = "src/zoo/rtdetr/denoising_dfine.py"
PYPROJECT = f"""[project]
name = "my-dfine-fork"
version = "0"

[tool.dnspec]
spec = "{BUILDER}:get_contrastive_denoising_training_group"
profile = "ci"
accept = [
    {{ id = "boxes.crossed@common", reason = "D-FINE keeps |w| for crossed negatives on purpose" }},
    {{ id = "raises:UnboundLocalError@box_noise_scale_0", reason = "we never train with scale 0" }},
]
"""
FEW_REGIMES = ["--regime", "common", "--regime", "box_noise_scale_0", "--regime", "batch_of_one"]
FEW_REGIMES += ["-k", "not fixed_workload"]  # the statistical batches are judged once, in the first test
FEW_NAMES = ("common", "box_noise_scale_0", "batch_of_one")


def _fork(tmp_path: Path, mask_bug: bool = False) -> Path:
    root = tmp_path / "my-fork"
    shutil.copytree(TREE, root)
    (root / "pyproject.toml").write_text(PYPROJECT)
    assert not list(root.rglob("test_*.py")) and not str(root).startswith(str(REPO))
    if mask_bug:
        path = root / BUILDER
        text = path.read_text()
        assert "    attn_mask[num_dn:, :num_dn] = True\n" in text
        path.write_text(text.replace("    attn_mask[num_dn:, :num_dn] = True\n", ""))
    return root


def _pytest(root: Path, *argv) -> tuple[int, dict, str]:
    """Run pytest in ``root``; (exit status, {nodeid: outcome}, output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    report = root / f"pytest-{len(list(root.glob('pytest-*.xml')))}.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *argv],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    outcomes = {}
    for suite in junitparser.JUnitXml.fromfile(str(report)):
        for case in suite:
            kinds = [type(r).__name__ for r in case.result]
            messages = " ".join((r.message or "") for r in case.result)
            status = "passed"
            if "Failure" in kinds or "Error" in kinds:
                status = "failed"
            elif "Skipped" in kinds:
                status = "xfailed" if "xfail" in messages.lower() or "known divergence" in messages else "skipped"
            outcomes[case.name] = status
    return done.returncode, outcomes, done.stdout + done.stderr


def test_dnspec_is_an_installed_distribution_there_and_not_part_of_the_tree(tmp_path):
    root = _fork(tmp_path)
    code = "import dnspec, importlib.metadata as m; print(dnspec.__file__); print(m.entry_points(group='pytest11'))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr
    assert not done.stdout.splitlines()[0].startswith(str(root)) and "dnspec.pytest_plugin" in done.stdout


def test_pytest_dnspec_collects_the_items_and_xfails_the_known_ones(tmp_path):
    root = _fork(tmp_path)
    code, outcomes, output = _pytest(root, "--dnspec", "-rx")
    assert code == 0, output[-3000:]
    assert outcomes["boxes[common]"] == "xfailed" and outcomes["structure[box_noise_scale_0]"] == "xfailed"
    assert outcomes["structure[common]"] == "passed" and outcomes["label_flip_rate[fixed_workload]"] == "passed"
    from dnspec.generation.regimes import NAMES

    assert {name.rsplit("[", 1)[1][:-1] for name in outcomes} == {*NAMES, "fixed_workload"}
    assert "failed" not in outcomes.values()
    assert "known divergence boxes.crossed@common: D-FINE keeps |w|" in output
    # each regime's items are judged by that regime's run alone: a few regimes on two workers give the same
    code_n, outcomes_n, output_n = _pytest(root, "--dnspec", *FEW_REGIMES, "-n", "2", "-v", "-v")
    few = {name: status for name, status in outcomes.items() if name.rsplit("[", 1)[1][:-1] in FEW_NAMES}
    assert code_n == 0 and outcomes_n == few, output_n[-3000:]
    # ... and each regime went to one worker as a whole (its run made once, not once per worker)
    workers_of = {}
    for worker, regime in re.findall(r"^\[(gw\d+)\].*? dnspec::\S+\[(\w+)\](?:\s|$)", output_n, re.MULTILINE):
        workers_of.setdefault(regime, set()).add(worker)
    assert set(workers_of) == set(FEW_NAMES) and all(len(w) == 1 for w in workers_of.values()), workers_of


@pytest.mark.parametrize(
    "nodeid, unit",
    [
        ("dnspec::boxes[common]", "dnspec::[common]"),
        ("dnspec::dtype_agreement[bfloat16][batch_of_one]", "dnspec::[batch_of_one]"),
        ("dnspec[src/a.py:build]::structure[box_noise_scale_0]", "dnspec[src/a.py:build]::[box_noise_scale_0]"),
        ("dnspec::label_flip_rate[fixed_workload]", "dnspec::label_flip_rate[fixed_workload]"),  # a run of its own
        ("tests/test_boxes.py::test_boxes[common]", "tests/test_boxes.py::test_boxes[common]"),  # not dnspec's
        ("dnspec_extra.py::test_x[common]", "dnspec_extra.py::test_x[common]"),
    ],
)
def test_an_item_s_unit_of_work_under_xdist_is_its_regime(nodeid, unit):
    from dnspec.pytest_items import regime_scope

    assert regime_scope(nodeid) == unit


def test_pytest_dnspec_fails_on_a_new_mask_bug_with_and_without_xdist(tmp_path):
    root = _fork(tmp_path, mask_bug=True)
    code, outcomes, output = _pytest(root, "--dnspec", *FEW_REGIMES)
    assert code == 1
    failed = sorted(name for name, status in outcomes.items() if status == "failed")
    assert failed == ["attention_mask[common]"], failed  # one bug, one failed item
    assert "DIVERGENCE attention_mask.object_queries_see_dn@common" in output
    assert outcomes["boxes[common]"] == "xfailed"
    code_n, outcomes_n, _ = _pytest(root, "--dnspec", *FEW_REGIMES, "-n", "2")
    assert code_n == 1 and outcomes_n == outcomes


def test_a_spec_on_the_command_line_and_an_accepted_check_that_no_longer_fails(tmp_path):
    root = _fork(tmp_path)
    path = root / BUILDER
    path.write_text(path.read_text().replace("        query_bbox[query_bbox < 0] *= -1\n", ""))
    spec = f"--dnspec={BUILDER}:get_contrastive_denoising_training_group"
    code, outcomes, output = _pytest(root, spec, "--regime", "common", "-k", "boxes or structure")
    assert code == 1
    assert outcomes["boxes[common]"] == "failed" and "XPASS(strict)" in output
    assert "boxes.crossed@common no longer happens; remove it from accept" in output
    assert {"boxes[common]", "structure[common]"} <= set(outcomes) and "attention_mask[common]" not in outcomes


def test_a_bad_configuration_is_a_usage_error(tmp_path):
    root = _fork(tmp_path)
    (root / "pyproject.toml").write_text(PYPROJECT.replace('profile = "ci"', 'profile = "fastest"'))
    code, _, output = (lambda d: (d.returncode, None, d.stdout + d.stderr))(
        subprocess.run([sys.executable, "-m", "pytest", "--dnspec"], cwd=root, capture_output=True, text=True)
    )
    assert code == 4 and "[tool.dnspec] profile" in output and "pyproject.toml" in output


def test_contract_and_against_from_the_configuration_and_the_command_line(tmp_path):
    """MINE, the fixture with a new mask bug, against THEIRS, the fixture itself, under the
    dfine contract, both named in [tool.dnspec]: the crash they share is xfailed (strict)
    "shared with THEIRS", the mask bug fails, and crossed boxes are D-FINE's contract (no
    accept list needed). ``--contract rtdetr`` on the command line overrides the file: then the
    crossed boxes diverge, in THEIRS too, so they are shared."""
    root = _fork(tmp_path)
    theirs = f"{BUILDER}:get_contrastive_denoising_training_group"
    mine = root / BUILDER.replace("denoising_dfine", "denoising_mine")
    mine.write_text((root / BUILDER).read_text().replace("    attn_mask[num_dn:, :num_dn] = True\n", ""))
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "mine"\nversion = "0"\n\n[tool.dnspec]\nspec = "{mine.relative_to(root)}:'
        f'get_contrastive_denoising_training_group"\nprofile = "ci"\ncontract = "dfine"\nagainst = "{theirs}"\n'
    )
    few = ["--regime", "common", "--regime", "box_noise_scale_0", "-k", "structure or attention_mask or boxes"]
    code, outcomes, output = _pytest(root, "--dnspec", "-rx", *few)
    assert code == 1, output[-3000:]
    assert outcomes["structure[box_noise_scale_0]"] == "xfailed" and outcomes["attention_mask[common]"] == "failed"
    assert outcomes["boxes[common]"] == "passed" and outcomes["structure[common]"] == "passed"
    assert f"raises:UnboundLocalError@box_noise_scale_0: shared with {theirs} (its divergence 1, " in output
    # the command line's contract: under RT-DETR's, crossed boxes diverge, in THEIRS too (shared)
    argv = ["--contract", "rtdetr", "--against", theirs, "--regime", "common", "-k", "boxes"]
    code, outcomes, output = _pytest(root, "--dnspec", "-rx", *argv)
    assert code == 0 and outcomes["boxes[common]"] == "xfailed", output[-3000:]
    assert f"boxes.crossed@common: shared with {theirs} (its divergence " in output
