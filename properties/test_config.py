"""``[tool.dnspec]`` configuration (issue 18 part 2): found as pytest and ruff find theirs,
overridden by the command line, and every kind of mistake one line naming the key and the
file, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnspec import config
from dnspec.cli import build_parser, main
from dnspec.commands.verify import configured_runs

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
