"""Builders whose result depends on their call history, and one that prints workflow
commands (properties/selftest/history_variants.py), in every route (issue 26 parts 3 to 5):

- the generator seeded once at import and the builder wrong on every fifth call are each
  exactly one ``call_history`` divergence, with its case, in ``dnspec verify`` (default
  jobs and ``--jobs 1``): exit 1, never 3 (a failure Hypothesis cannot replay is that
  divergence, not a ``FlakyFailure`` traceback); in ``pytest --dnspec`` (plain and ``-n 2``)
  exactly one failed item, the ``call_history`` one;
- the builder that prints ``::stop-commands::``, ``::add-mask::`` and ``::error`` lines and
  raises on batches of one image is one divergence there, and in ``pytest --dnspec`` one
  failed item (the other items of that regime are skipped as not judged, naming it), and
  no line pytest prints starts with ``::``;
- the correct controls (a private torch or numpy generator seeded on every call from
  torch's global RNG) conform, and pass ``call_history`` and ``determinism``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dnspec.calling import workers
from dnspec.checks.suite import BY_NAME, RunOptions
from dnspec.cli import main
from dnspec.running.runner import evaluate

from .history_variants import BROKEN, CONTROLS, WORKFLOW_COMMANDS

VARIANTS = Path(__file__).parent / "history_variants.py"
QUICK = ["--profile", "ci", "--max-examples", "4", "--seed", "0"]
FORKS = pytest.mark.skipif(not workers.can_fork("cpu"), reason="these checks fork worker processes (Linux)")
ROUTE_TIMEOUT_S = 600
HISTORY_SPECS = {"seeded_once": "once_seeded", "every_fifth_call": "fifth_call_wrong"}
OPTIONS = RunOptions(seed=0, max_examples=10)


@pytest.mark.parametrize("name", BROKEN)
def test_call_history_catches_a_history_dependent_builder(name):
    impl, expected = BROKEN[name]
    for prop in expected:
        outcome = evaluate(BY_NAME[prop], impl, OPTIONS)
        assert outcome.status == "fail" and "depends on its call history" in outcome.details, outcome.details


@pytest.mark.parametrize("prop", ["call_history", "determinism"])
@pytest.mark.parametrize("name", CONTROLS)
def test_a_generator_seeded_on_every_call_passes(name, prop):
    outcome = evaluate(BY_NAME[prop], CONTROLS[name], OPTIONS)
    assert outcome.status == "pass", (name, prop, outcome.message)


def _verify(tmp_path, spec, *argv):
    path = tmp_path / f"report-{spec}-{len(list(tmp_path.iterdir()))}.json"
    code = main(["verify", f"{VARIANTS}:{spec}", *QUICK, *argv, "--report", str(path)])
    return code, json.loads(path.read_text())


@FORKS
@pytest.mark.parametrize("jobs", [[], ["--jobs", "1"]], ids=["default-jobs", "jobs-1"])
@pytest.mark.parametrize("name", HISTORY_SPECS)
def test_a_history_dependent_builder_is_one_divergence_in_verify(tmp_path, capsys, name, jobs):
    code, data = _verify(tmp_path, HISTORY_SPECS[name], *jobs)
    out = capsys.readouterr().out
    assert code == 1 and "Traceback" not in out and "Flaky" not in out, out[-3000:]
    (divergence,) = data["divergences"]
    assert divergence["name"] == "call_history" and "depends on its call history" in divergence["title"]
    assert divergence["example"].startswith("CdnCase(targets=({")
    assert re.search(r"at call \d+ of|\(\d+ calls in that process\)", divergence["title"]), divergence[
        "title"
    ]  # its count


@FORKS
def test_printed_workflow_commands_are_one_divergence_and_defused_in_verify(tmp_path, capsys):
    code, data = _verify(tmp_path, "printing_commands")
    out = capsys.readouterr().out
    assert code == 1
    (divergence,) = data["divergences"]
    assert divergence["name"].startswith("RuntimeError@") and divergence["regimes"] == [["batch_of_one"]]
    assert divergence["example"].startswith("CdnCase(targets=({") and divergence["example"].count("'labels'") == 1
    assert not [line for line in out.splitlines() if line.lstrip().startswith("::")]


@FORKS
@pytest.mark.parametrize("name", CONTROLS)
def test_the_controls_conform_in_verify(tmp_path, capsys, name):
    spec = {"torch_generator_per_call": "per_call_torch", "numpy_generator_per_call": "per_call_numpy"}[name]
    code, data = _verify(tmp_path, spec)
    capsys.readouterr()
    assert code == 0 and data["divergences"] == [], data["divergences"]


def _pytest_dnspec(folder: Path, spec: str, *argv) -> subprocess.CompletedProcess:
    """``pytest --dnspec=SPEC`` in an empty folder (no test files, no configuration), on the
    common regime and batches of one image."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfs", "--dnspec-profile", "ci"]
        + [f"--dnspec={VARIANTS}:{spec}", "--regime", "common", "--regime", "batch_of_one", *argv],
        capture_output=True,
        text=True,
        timeout=ROUTE_TIMEOUT_S,
        cwd=folder,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def _failed(output: str) -> list[str]:
    return sorted(set(re.findall(r"^FAILED (\S+)", output, re.MULTILINE)))


@FORKS
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
@pytest.mark.parametrize(
    "spec, failing",
    [
        ("once_seeded", "call_history[fixed_workload]"),
        ("fifth_call_wrong", "call_history[fixed_workload]"),
        ("printing_commands", "[batch_of_one]"),
    ],
)
def test_one_bug_is_one_failed_item_in_pytest(tmp_path, spec, failing, xdist):
    done = _pytest_dnspec(tmp_path, spec, *xdist)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    failed = _failed(output)
    assert len(failed) == 1 and failed[0].endswith(failing), (failed, output[-3000:])
    assert re.search(r"\b1 failed\b", output), output[-2000:]
    assert not [line for line in output.splitlines() if line.lstrip().startswith("::")], output[-3000:]
    if spec == "printing_commands":
        assert "not judged: divergence raises:RuntimeError@batch_of_one is reported by" in output, output[-3000:]
        assert "add-mask" in WORKFLOW_COMMANDS and ": :add-mask::" in output  # shown, defused
