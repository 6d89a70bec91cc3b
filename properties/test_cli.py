"""The command line itself: SPEC forms, exit codes, report files, and implementations
that hang, crash or misbehave (issue 4 part 4, issue 7 part 5).

Most tests call ``dnspec.cli.main`` in-process with ``--only`` and a handful of
examples; subprocesses are used where isolation is the point (``dnspec matrix`` surviving
an implementation that kills its interpreter, the exit status of ``python -m dnspec``).
Every run on a misbehaving implementation also checks that dnspec printed no traceback
of its own.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dnspec.cli import main
from dnspec.reports.conformance import conformance_table, family_cell, matrix_columns
from dnspec.reports.records import OutcomeRecord, VerifyReport

FIXTURES = Path(__file__).parent / "cli_fixtures"
FAST = ["--profile", "ci", "--max-examples", "5"]
QUICK = [*FAST, "--no-shrink"]  # where the report line is the point, not the shrinking (saves seconds a run)


def fixture(name: str, attr: str = "build") -> str:
    return f"{FIXTURES / name}:{attr}"


def verify(capsys, *argv) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err, "dnspec printed a traceback"
    return code, captured.out, captured.err


def line_of(out: str, status: str, label: str) -> str:
    for line in out.splitlines():
        if line.startswith(status) and line.split()[1] == label:
            return line
    raise AssertionError(f"no {status} line for {label} in:\n{out}")


def divergence(out: str, number: int = 1) -> str:
    """The block printed for divergence ``number`` (its header and indented lines)."""
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"DIVERGENCE {number}: ")), None)
    assert start is not None, f"no divergence {number} in:\n{out}"
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line)
    return "\n".join(block)


# --- SPEC forms and exit status 0 -------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "reference",
        "dnspec.contract.reference:get_contrastive_denoising_training_group",
        str(FIXTURES / "good.py") + ":build",
    ],
    ids=["built-in", "module:callable", "file.py:callable"],
)
def test_each_spec_form_loads_and_conforms(capsys, spec):
    code, out, _ = verify(capsys, spec, "--only", "structure", "attention_mask", *FAST)
    assert code == 0, out
    line_of(out, "PASS", "structure")
    line_of(out, "PASS", "attention_mask")
    assert "conforms (2 passed, 0 failed" in out


def _install_entry_point_package(target: Path) -> str:
    """Install the fixture package into ``target`` the way pip does (a real build when
    setuptools is here, else the same installed layout written by hand: the module and a
    .dist-info with METADATA and entry_points.txt). Returns how it was installed."""
    source = target.parent / "src"
    shutil.copytree(FIXTURES / "entry_point_pkg", source)
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("pip"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--disable-pip-version-check",
                "--target",
                str(target),
                str(source),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode == 0:
            return "pip"
    target.mkdir(exist_ok=True)
    shutil.copy(source / "dnspec_cli_fixture_ep.py", target)
    info = target / "dnspec_cli_fixture_ep-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dnspec-cli-fixture-ep\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[dnspec.implementations]\ncli-fixture-good = dnspec_cli_fixture_ep:build\n")
    return "by hand"


def test_entry_point_spec_from_an_installed_package(capsys, tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_entry_point_package(site)
    monkeypatch.syspath_prepend(str(site))  # importlib.metadata discovers it like any installed distribution
    code, out, _ = verify(capsys, "cli-fixture-good", "--only", "structure", *FAST)
    assert code == 0, out
    assert "cli-fixture-good (0.1.0)" in out  # the distribution's version is the label's
    line_of(out, "PASS", "structure")


# --- exit status 1: failures, shrunk counterexamples and replays ---------------------------


def test_broken_implementation_exits_1_with_a_shrunk_counterexample_that_replays(capsys):
    code, out, _ = verify(capsys, fixture("broken.py"), "--only", "attention_mask", *FAST)
    assert code == 1
    assert line_of(out, "FAIL", "attention_mask").endswith("fails in the common regime (divergence 1)")
    block = divergence(out)
    assert block.startswith("DIVERGENCE 1: attention_mask.object_queries_see_dn, in the common regime")
    assert "object query 0 may not attend to dn row 0" in block
    assert "minimal example (attention_mask in common, shrunk by Hypothesis):" in block
    assert "does NOT conform: 1 divergence" in out
    replay = next(line for line in out.splitlines() if line.strip().startswith("replay: "))
    argv = shlex.split(replay.split("replay: ", 1)[1].split("   (")[0])
    assert argv[:2] == ["dnspec", "verify"] and argv[argv.index("--only") + 1] == "attention_mask"
    assert argv[argv.index("--regime") + 1] == "common"

    # the replay command shows the same counterexample (ci is derandomized)
    code_again, out_again, _ = verify(capsys, *argv[2:])
    assert code_again == 1

    def example(text):  # the indented line under "minimal example"
        lines = divergence(text).splitlines()
        return lines[1 + next(i for i, line in enumerate(lines) if "minimal example" in line)]

    assert example(out_again) == example(out)


def test_crashing_implementation_is_a_reported_failure(capsys):
    code, out, _ = verify(capsys, fixture("crashes.py"), "--only", "structure", *FAST)
    assert code == 1
    block = divergence(out)
    assert block.startswith("DIVERGENCE 1: IndexError at crashes.py:")
    assert "raised IndexError: index 1 is out of bounds" in block
    assert "raised at: File " in block and "shrunk by Hypothesis" in block


def test_hanging_implementation_is_stopped_by_the_time_limit(capsys):
    code, out, _ = verify(
        capsys,
        fixture("hangs.py"),
        "--only",
        "structure",
        "attention_mask",
        "label_flip_rate",
        "--time-limit",
        "0.5",
        *FAST,
    )
    assert code == 1
    block = divergence(out)
    assert block.startswith("DIVERGENCE 1: hangs, in the common regime")
    assert "ran past the time limit of 0.5 s and was stopped" in block
    assert "properties: structure, attention_mask, label_flip_rate" in block  # one hang, every property it stopped
    assert "DIVERGENCE 2" not in out
    assert "NOTE      hang:" in out


def test_time_limit_also_covers_the_statistical_batches(capsys):
    code, out, _ = verify(capsys, fixture("hangs.py"), "--only", "label_flip_rate", "--time-limit", "0.5", *FAST)
    assert code == 1
    assert "ran past the time limit of 0.5 s" in divergence(out)


# --- exit status 2: the SPEC or an option is unusable ---------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("no-such-implementation", "not a built-in name"),
        ("no_such_module_for_dnspec:build", "no module named 'no_such_module_for_dnspec'"),
        ("dnspec.contract.reference:no_such_function", "has no attribute 'no_such_function'"),
        (str(FIXTURES / "no_such_file.py") + ":build", "does not exist"),
        (fixture("import_raises.py"), "raised ImportError: cdn_ext: compiled extension not built"),
        ("dnspec.contract.reference:NO_OUTPUT", "not callable"),
    ],
    ids=["unknown-name", "missing-module", "missing-attribute", "missing-file", "import-raises", "not-callable"],
)
def test_unloadable_spec_exits_2_with_one_line(capsys, spec, expected):
    code, out, err = verify(capsys, spec, *FAST)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dnspec verify: ") and "SPEC " in err, err
    assert expected in err
    assert out == ""


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--only", "no_such_property"], "--only no_such_property: no such property or family"),
        (["--report", "report.txt"], "use a .md or .json file name"),
        (["--max-examples", "0"], "must be at least 1"),
        (["--report", "/no/such/folder/report.json"], "does not exist"),
    ],
)
def test_unusable_options_exit_2(capsys, argv, expected):
    code, _, err = verify(capsys, "reference", *argv)
    assert code == 2 and expected in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_exits_2(capsys):
    code, _, err = verify(capsys, "reference", "--device", "cuda")
    assert code == 2 and "no CUDA device here" in err


def test_only_accepts_a_family_name(capsys):
    code, out, _ = verify(capsys, "reference", "--only", "device/dtype", *FAST)
    assert code == 0
    line_of(out, "PASS", "dtype_agreement[float16]")


# --- bad conditions (issue 7 part 5): each a clear line, no dnspec traceback ----------------


def test_wrong_signature_is_named(capsys):
    """A signature that cannot take RT-DETR's arguments is not called (issue 25 §2): exit 2,
    one line with both signatures, no divergence."""
    code, out, err = verify(capsys, fixture("wrong_signature.py"), "--only", "structure", *QUICK)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "signature: " in err and "(labels, boxes, class_embed)" in err and "no parameter takes" in err


def test_wrong_number_of_outputs_is_named(capsys):
    code, out, _ = verify(capsys, fixture("wrong_outputs.py"), "--only", "structure", *QUICK)
    assert code == 1
    line_of(out, "FAIL", "structure")
    assert "expected a tuple of 4 outputs" in divergence(out)


def test_outputs_on_another_device_are_named(capsys):
    code, out, _ = verify(capsys, fixture("wrong_device.py"), "--only", "structure", *QUICK)
    assert code == 1
    line_of(out, "FAIL", "structure")
    assert "is on meta, but the inputs are on cpu" in divergence(out)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: run on a GPU machine")
def test_cpu_outputs_for_cuda_inputs_are_named(capsys):
    code, out, _ = verify(capsys, fixture("wrong_device.py"), "--only", "structure", "--device", "cuda", *QUICK)
    assert code == 1
    line_of(out, "FAIL", "structure")
    assert "is on cpu, but the inputs are on cuda" in divergence(out)


def test_mutated_inputs_are_named(capsys):
    code, out, _ = verify(capsys, fixture("mutates.py"), "--only", "inputs_untouched", *QUICK)
    assert code == 1
    line_of(out, "FAIL", "inputs_untouched")
    assert "targets[0]['boxes'] was modified" in divergence(out)


def test_printed_megabytes_are_captured_and_counted(capsys, tmp_path):
    report = tmp_path / "report.md"
    code, out, err = verify(capsys, fixture("prints.py"), "--only", "structure", *FAST, "--report", str(report))
    assert code == 0
    assert len(out) + len(err) < 20_000, "the implementation's output leaked onto the terminal"
    line_of(out, "PASS", "structure")
    assert "NOTE      output: the implementation printed" in out and "MB during the run" in out
    text = report.read_text()
    assert "## Output printed by the implementation" in text and "debug debug" in text
    assert len(text) < 50_000


def test_output_printed_while_importing_is_captured_too(capsys, tmp_path):
    module = tmp_path / "noisy_import.py"
    module.write_text(
        "print('x' * 2_000_000)\nfrom dnspec.contract.reference import get_contrastive_denoising_training_group as build\n"
    )
    code, out, err = verify(capsys, f"{module}:build", "--only", "structure", *FAST)
    assert code == 0 and len(out) + len(err) < 20_000
    assert "printed 2.0 MB (captured, not shown)" in out


# --- report files ------------------------------------------------------------------------------


def test_json_report_holds_every_outcome_and_divergence(capsys, tmp_path):
    path = tmp_path / "report.json"
    code, _, _ = verify(
        capsys, fixture("broken.py"), "--only", "structure", "attention_mask", *QUICK, "--report", str(path)
    )
    assert code == 1
    data = json.loads(path.read_text())
    assert data["exit_code"] == 1 and data["spec"].endswith("broken.py:build")
    assert data["summary"] == {"pass": 1, "fail": 1, "skip": 0, "advisory": 0}
    assert data["compatibility"] == "departs from RT-DETR (see divergences)"
    by_label = {o["label"]: o for o in data["outcomes"]}
    assert by_label["structure"]["status"] == "pass" and set(by_label["structure"]["regimes"].values()) == {"pass"}
    failure = by_label["attention_mask"]
    assert failure["status"] == "fail" and failure["family"] == "attention mask" and failure["divergences"] == [1]
    assert failure["regimes"]["common"] == "fail"
    assert "--only attention_mask" in failure["replay"]
    (found,) = data["divergences"]
    assert found["name"] == "attention_mask.object_queries_see_dn" and found["properties"] == ["attention_mask"]
    assert found["in_common_regime"] and found["regimes"] == [[]] and found["regimes_text"] == "the common regime"
    assert found["example"].startswith("CdnCase(") and not found["example_shrunk"]  # --no-shrink: as first found
    assert "--regime common" in found["replay"] and found["cells"][0]["regime"] == "common"
    again = VerifyReport.from_dict(data)
    assert again.counts()["fail"] == 1 and again.divergences[0].display_name == found["name"]


def test_markdown_report_has_the_table_and_the_divergence(capsys, tmp_path):
    path = tmp_path / "report.md"
    code, _, _ = verify(capsys, fixture("broken.py"), "--only", "attention_mask", *QUICK, "--report", str(path))
    assert code == 1
    text = path.read_text()
    assert text.startswith("# dnspec verify: ")
    assert "| FAIL | `attention_mask` | attention mask | fails in the common regime (divergence 1) |" in text
    assert (
        "### 1. `attention_mask.object_queries_see_dn`, in the common regime" in text
        and "Replay: `dnspec verify " in text
    )


def test_unloadable_spec_still_writes_its_report(capsys, tmp_path):
    path = tmp_path / "report.json"
    code, _, _ = verify(capsys, fixture("import_raises.py"), "--report", str(path))
    assert code == 2
    data = json.loads(path.read_text())
    assert data["exit_code"] == 2 and "raised ImportError" in data["error"]


# --- the conformance table ------------------------------------------------------------------------


def _record(label, family, status, message=""):
    return OutcomeRecord(
        property=label, label=label, family=family, kind="contract", summary="", status=status, message=message
    )


def test_family_cells_aggregate_fail_over_advisory_over_pass_over_skip():
    fail, adv = _record("a", "f", "fail", "broke | here"), _record("b", "f", "advisory", "upstream quirk")
    ok, skip = _record("c", "f", "pass"), _record("d", "f", "skip", "no cuda")
    assert family_cell([ok, adv, fail, skip]).startswith("**fail**: `a`: broke | here")
    assert family_cell([ok, adv, skip]) == "advisory: `b`"
    assert family_cell([ok, skip]) == "pass (d skipped)"
    assert family_cell([skip]) == "skipped: no cuda"
    assert family_cell([]) == "-"


def test_a_new_family_gets_its_column_without_code_changes():
    report = VerifyReport(
        spec="x",
        implementation={"label": "x (1.0)"},
        compatibility="same distributions as RT-DETR",
        outcomes=[
            _record("structure", "structure", "pass"),
            _record("nan_box", "error inputs", "advisory", "returns NaN"),
        ],
    )
    columns = [family for family, _ in matrix_columns([report])]
    assert columns[0] == "structure" and columns[-1] == "error inputs"
    table = conformance_table([report])
    assert table.splitlines()[0].endswith("| error inputs |")
    assert "| x (1.0) | same distributions as RT-DETR | - | - | pass |" in table and "advisory: `nan_box`" in table


def test_a_failing_cell_names_its_divergences():
    from dnspec.reports.records import DivergenceRecord

    record = _record("structure", "structure", "fail", "holds except in box_noise_scale == 0 (divergence 1)")
    record.divergences = [1]
    report = VerifyReport(
        spec="x",
        outcomes=[record],
        divergences=[
            DivergenceRecord(
                1, "UnboundLocalError@denoising.py:97", "raises", "raised", regimes_text="box_noise_scale == 0"
            )
        ],
    )
    assert family_cell([record], report) == "**fail**: D1 `UnboundLocalError at denoising.py:97` (box_noise_scale == 0)"


def test_matrix_survives_an_implementation_that_kills_its_interpreter(capsys, tmp_path):
    out_path = tmp_path / "matrix.md"
    # --jobs 1 is still one worker: the implementation kills a worker, never the verify process
    code = main(
        [
            "matrix",
            "reference",
            fixture("crashes.py", "build_abort"),
            "--only",
            "structure",
            "--profile",
            "ci",
            "--max-examples",
            "3",
            "--jobs",
            "1",
            "--out",
            str(out_path),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "Traceback" not in captured.out + captured.err
    text = out_path.read_text()
    rows = {
        line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ") and " | " in line
    }
    assert (
        rows["reference (dnspec " + __import__("dnspec").__version__ + ")"].startswith("| reference")
        and "| pass |" in rows[next(k for k in rows if k.startswith("reference"))]
    )
    abort_row = next(line for key, line in rows.items() if key.endswith("crashes.py:build_abort"))
    assert "**fail**: D1 `died: exited with status 139`" in abort_row
    assert "Regenerate with `dnspec matrix" in text


def test_matrix_in_parallel_writes_the_same_table_in_the_same_row_order(capsys, tmp_path):
    """--parallel runs the verify subprocesses side by side; the table is the one of one at
    a time, rows in the order the SPECs were given (not the order they finished), and a bad
    count is refused where it is parsed."""
    import re

    specs = ["reference", fixture("crashes.py", "build_abort"), fixture("broken.py")]
    quick = ["--only", "structure", "--profile", "ci", "--max-examples", "3", "--jobs", "1", "--seed", "0"]
    tables = []
    out_path = tmp_path / "matrix.md"  # one path: the table's command line names it
    for parallel in ("1", "3"):
        assert main(["matrix", *specs, *quick, "--parallel", parallel, "--out", str(out_path)]) == 0
        tables.append(re.sub(r"\d+(?:\.\d+)? ?s\b", "<N> s", out_path.read_text()))
    capsys.readouterr()
    assert tables[0] == tables[1]
    first_cells = [line.split(" | ")[0] for line in tables[1].splitlines() if line.startswith("| ") and " | " in line]
    order = [next(i for i, cell in enumerate(first_cells) if spec.split("/")[-1] in cell) for spec in specs]
    assert order == sorted(order) and len(set(order)) == 3, (order, first_cells)
    with pytest.raises(SystemExit) as exited:
        main(["matrix", "reference", "--parallel", "0"])
    assert exited.value.code == 2 and "--parallel" in capsys.readouterr().err


def test_python_dash_m_dnspec_exit_status_in_a_subprocess():
    done = subprocess.run(
        [sys.executable, "-m", "dnspec", "verify", fixture("wrong_outputs.py"), "--only", "structure", *QUICK],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "expected a tuple of 4 outputs" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_demo_prints_shapes(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "input_query_class  Tensor [3, 198, 256] float32" in out
    assert "dn_meta['dn_num_split'] = [198, 300]" in out
    assert "obj ########|..." in out


def test_every_registered_property_has_a_pytest_test():
    """The pytest route runs every property of the registry (one thin test each)."""
    import re

    from dnspec.checks.suite import PROPERTIES

    texts = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    called = set(re.findall(r'check_property\("(\w+)"', texts))
    assert {p.name for p in PROPERTIES} <= called, {p.name for p in PROPERTIES} - called
