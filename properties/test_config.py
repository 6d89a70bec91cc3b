"""``[tool.dnspec]`` configuration (issue 18 part 2): found as pytest and ruff find theirs,
overridden by the command line, and every kind of mistake one line naming the key and the
file, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnspec import config
from dnspec.cli import build_parser, main
from dnspec.commands.verify_options import configured_runs

FILE = "src/zoo/rtdetr/denoising_dfine.py:get_contrastive_denoising_training_group"


def _project(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pyproject.toml"
    path.write_text('[project]\nname = "fork"\nversion = "0"\n\n[tool.dnspec]\n' + body)
    return path


def _args(*argv):
    args = build_parser(["verify", *argv]).parse_args(["verify", *argv])
    return args


def test_the_nearest_pyproject_with_a_dnspec_table_is_found_walking_up(tmp_path, monkeypatch):
    _project(tmp_path, f'spec = "{FILE}"\nprofile = "ci"\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deeper").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no [tool.dnspec]: passed over
    monkeypatch.chdir(tmp_path / "sub" / "deeper")
    found = config.load()
    assert found.path == str(tmp_path / "pyproject.toml")
    assert found.profile == "ci"
    # a SPEC path is relative to the file's folder (absolute when that is not under the working folder)
    assert found.specs == [f"{tmp_path}/{FILE}"]
    monkeypatch.chdir(tmp_path)
    assert config.load().specs == [FILE]


def test_no_configuration_is_an_empty_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.load(start=str(tmp_path)) == config.Config()


def test_the_command_line_overrides_the_file_and_the_file_fills_the_rest(tmp_path, monkeypatch):
    path = _project(
        tmp_path,
        f'spec = ["{FILE}", "reference"]\nprofile = "ci"\ndevice = "cpu"\ndtype = "float64"\njobs = 1\n'
        'time_limit = 5\nregimes = ["common"]\nreports = ["out/d.xml"]\nconvention = "rtdetr"\n'
        'accept = [{ id = "boxes.crossed", reason = "kept on purpose" }, '
        '{ id = "hangs", reason = "slow here", spec = "reference" }]\n',
    )
    monkeypatch.chdir(tmp_path)
    runs = configured_runs(_args("--profile", "dev", "--accept", "structure.empty_batch@all_images_empty"))
    assert [r.spec for r in runs] == [FILE, "reference"]
    first, second = runs
    assert first.profile == "dev" and first.dtype == "float64" and first.jobs == 1 and first.time_limit == 5.0
    assert first.regime == ["common"] and first.convention == "rtdetr"
    assert first.report == ["out/d.xml"] and second.report == ["out/d-2.xml"]
    assert [a.id for a in first.accepted] == ["boxes.crossed", "structure.empty_batch@all_images_empty"]
    assert [a.id for a in second.accepted] == ["boxes.crossed", "hangs", "structure.empty_batch@all_images_empty"]
    assert first.accepted[0].source == "pyproject.toml" and first.accepted[0].reason == "kept on purpose"
    one = configured_runs(_args("reference", "--config", str(path), "--dtype", "float32"))
    assert [r.spec for r in one] == ["reference"] and one[0].dtype == "float32"


MISTAKES = {
    "unknown key": ("profiel = 'ci'\n", "profiel"),
    "wrong type": ("jobs = 'two'\n", "jobs"),
    "out of range": ("jobs = 0\n", "jobs"),
    "not a choice": ("profile = 'fast'\n", "profile"),
    "spec not a string": ("spec = 3\n", "spec"),
    "unknown regime": ("regimes = ['common', 'huge_boxes']\n", "regimes"),
    "negative time limit": ("time_limit = -1\n", "time_limit"),
    "accept not a list": ("accept = 'boxes.crossed'\n", "accept"),
    "accept without a reason": ("accept = [{ id = 'boxes.crossed' }]\n", "accept[0].reason"),
    "accept with an empty reason": ("accept = [{ id = 'boxes.crossed', reason = ' ' }]\n", "accept[0].reason"),
    "accept with an unknown key": ("accept = [{ id = 'boxes.crossed', reason = 'r', why = 'w' }]\n", "accept[0].why"),
    "accept naming no check": ("accept = [{ id = 'boxe.crossed@common', reason = 'r' }]\n", "accept[0].id"),
    "accept naming no regime": ("accept = [{ id = 'boxes.crossed@huge', reason = 'r' }]\n", "accept[0].id"),
    "not TOML": ("spec = [\n", "pyproject.toml"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_kind_of_mistake_is_one_line_naming_key_and_file_and_exit_2(mistake, tmp_path, monkeypatch, capsys):
    body, key = MISTAKES[mistake]
    _project(tmp_path, body)
    monkeypatch.chdir(tmp_path)
    code = main(["verify", "reference"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and captured.out == ""
    assert len(lines) == 1, lines
    assert "pyproject.toml" in lines[0] and key in lines[0], lines[0]


def test_a_missing_config_file_and_a_bad_accept_option_are_one_line_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "reference", "--config", "nowhere.toml"]) == 2
    assert capsys.readouterr().err.strip() == "dnspec verify: --config nowhere.toml: no such file"
    assert main(["verify", "reference", "--accept", "nothing.at_all"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--accept" in err[0] and "nothing.at_all" in err[0]
    assert main(["verify", "reference", "--baseline", "missing.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baseline missing.json" in err[0]


def test_verify_without_spec_and_without_configuration_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["verify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no SPEC" in err[0] and "[tool.dnspec]" in err[0]


DFINE_FORK = Path(__file__).parent / "repo_fixtures" / "rtdetr_fork"
LOOP_FREE = Path(__file__).parent / "selftest" / "lineage_variants.py"


def test_contract_and_against_come_from_the_file_and_the_command_line_overrides_them(tmp_path, monkeypatch):
    """``contract`` is a lineage contract's name; ``against`` a SPEC relative to the file's
    folder, like ``spec``; THEIRS itself among the configured SPECs is verified on its own;
    ``--no-against`` ignores the file's ``against``."""
    _project(tmp_path, f'spec = ["reference", "{FILE}"]\ncontract = "dfine"\nagainst = "{FILE}"\n')
    monkeypatch.chdir(tmp_path)
    mine, theirs = configured_runs(_args())
    assert mine.contract == theirs.contract == "dfine"
    assert mine.against == FILE and theirs.against is None
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    (run,) = configured_runs(_args("reference"))
    assert run.against == f"{tmp_path}/{FILE}"  # relative to the file's folder, not the working folder
    (run,) = configured_runs(_args("reference", "--contract", "deim", "--against", "theirs.py:f"))
    assert run.contract == "deim" and run.against == "theirs.py:f"
    (run,) = configured_runs(_args("reference", "--no-against"))
    assert run.against is None and run.contract == "dfine"
    assert config.load().against == f"{tmp_path}/{FILE}" and config.load().contract == "dfine"


@pytest.mark.parametrize(
    "body, key",
    [("contract = 'yolo'\n", "contract"), ("against = 3\n", "against"), ("against = ''\n", "against")],
)
def test_an_unknown_contract_or_a_bad_against_is_one_line_and_exit_2(body, key, tmp_path, monkeypatch, capsys):
    _project(tmp_path, body)
    monkeypatch.chdir(tmp_path)
    assert main(["matrix", "reference"]) == 2
    assert main(["verify", "reference"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 2, lines
    for line in lines:
        assert "pyproject.toml: [tool.dnspec] " + key in line, line
    if key == "contract":
        assert "'yolo' is not one of rtdetr, rtdetrv2, dfine, deim" in lines[0]


def test_verify_runs_under_the_files_contract_against_the_files_theirs(tmp_path, monkeypatch, capsys):
    """One small run: MINE (a loop-free rewrite) against THEIRS (the D-FINE-pattern fixture)
    under the dfine contract, all three named in [tool.dnspec] only; THEIRS' crash is KNOWN."""
    theirs = DFINE_FORK / "src" / "zoo" / "rtdetr" / "denoising_dfine.py"
    _project(
        tmp_path,
        f'spec = "{LOOP_FREE}:dfine_loop_free"\ncontract = "dfine"\n'
        f'against = "{theirs}:get_contrastive_denoising_training_group"\n',
    )
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "r.json"
    argv = ["--only", "structure", "--regime", "box_noise_scale_0", "--max-examples", "3", "--jobs", "1"]
    code = main(["verify", *argv, "--profile", "ci", "--no-shrink", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(report.read_text())
    assert data["options"]["contract"] == "dfine" and data["options"]["against"].startswith(str(theirs))
    assert [d["accepted_by"] for d in data["divergences"]] == [
        f"--against {theirs}:get_contrastive_denoising_training_group"
    ]
    assert "KNOWN     structure" in out


def test_matrix_takes_against_from_the_file_and_keeps_its_plain_column_plain(tmp_path, monkeypatch, capsys):
    """The matrix's plain run of each SPEC ignores the file's ``against`` (--no-against);
    its comparison column is run against it, except for THEIRS itself."""
    import subprocess

    from dnspec.reports.records import VerifyReport

    _project(tmp_path, f'against = "{FILE}"\ncontract = "dfine"\n')
    monkeypatch.chdir(tmp_path)
    commands = []

    def fake_verify(command, **kwargs):  # writes the report a verify subprocess would
        commands.append(command)
        against = command[command.index("--against") + 1] if "--against" in command else None
        spec = command[command.index("verify") + 1]
        report = VerifyReport(spec=spec, compatibility=f"compared with {against}" if against else "on its own")
        Path(command[command.index("--report") + 1]).write_text(json.dumps(report.to_dict()))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_verify)
    assert main(["matrix", "reference", FILE]) == 0
    runs = [(c[c.index("verify") + 1], c[c.index("--against") + 1] if "--against" in c else None) for c in commands]
    assert runs == [("reference", None), ("reference", FILE), (FILE, None)]
    assert all("--no-against" in c for c in commands if "--against" not in c)
    out = capsys.readouterr().out
    assert f"vs {FILE}" in out and f"compared with {FILE}" in out
