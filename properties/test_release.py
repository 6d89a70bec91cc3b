"""The release artifact check (``ci/artifacts.py``, run by ci/release.sh on the wheel and
sdist that ``python -m build`` writes) can fail: a wheel and an sdist laid out as setuptools
lays out dnspec's pass it, and each thing a user needs that is missing (the pytest11 entry
point, the console script, the license, py.typed, the version) and each piece of the test
suite that slips in is named. ci/release.sh itself builds, installs and runs the real
artifacts; here the checker is judged on archives written under tmp_path."""

import importlib.util
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSION = "9.8.7"
INFO = f"dnspec-{VERSION}.dist-info"


def _load_checker():
    spec = importlib.util.spec_from_file_location("dnspec_ci_artifacts", ROOT / "ci" / "artifacts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


artifacts = _load_checker()

GOOD_WHEEL = {
    "dnspec/__init__.py": f'__version__ = "{VERSION}"\n',
    "dnspec/cli.py": "",
    "dnspec/pytest_plugin.py": "",
    "dnspec/py.typed": "",
    "dnspec/benchmarks/timing.py": "",  # dnspec's own benchmarks package is part of it
    f"{INFO}/METADATA": f"Metadata-Version: 2.4\nName: dnspec\nVersion: {VERSION}\nLicense-Expression: Apache-2.0\n",
    f"{INFO}/entry_points.txt": "[console_scripts]\ndnspec = dnspec.cli:main\n\n[pytest11]\ndnspec = dnspec.pytest_plugin\n",
    f"{INFO}/licenses/LICENSE": "\n    Apache License\n    Version 2.0, January 2004\n",
    f"{INFO}/RECORD": "",
}
GOOD_SDIST = ["LICENSE", "pyproject.toml", "README.md", "dnspec/__init__.py", "dnspec/py.typed", "PKG-INFO"]


def _wheel(tmp_path, files, name=f"dnspec-{VERSION}-py3-none-any.whl") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def _sdist(tmp_path, members) -> Path:
    path = tmp_path / f"dnspec-{VERSION}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            info = tarfile.TarInfo(f"dnspec-{VERSION}/{member}")
            archive.addfile(info, io.BytesIO(b""))
    return path


def test_artifacts_laid_out_as_setuptools_lays_them_out_pass(tmp_path, capsys):
    wheel, sdist = _wheel(tmp_path, GOOD_WHEEL), _sdist(tmp_path, GOOD_SDIST)
    assert artifacts.wheel_problems(wheel, VERSION) == []
    assert artifacts.sdist_problems(sdist, VERSION) == []
    assert artifacts.main([str(wheel), str(sdist), VERSION]) == 0
    assert "carry what a user needs" in capsys.readouterr().out


def _without(member):
    return {k: v for k, v in GOOD_WHEEL.items() if k != member}


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({**GOOD_WHEEL, f"{INFO}/entry_points.txt": "[console_scripts]\ndnspec = dnspec.cli:main\n"}, "pytest11"),
        ({**GOOD_WHEEL, f"{INFO}/entry_points.txt": "[pytest11]\ndnspec = dnspec.pytest_plugin\n"}, "console script"),
        (_without(f"{INFO}/licenses/LICENSE"), "license file"),
        ({**GOOD_WHEEL, f"{INFO}/licenses/LICENSE": "MIT License\n"}, "license file"),
        (
            {**GOOD_WHEEL, f"{INFO}/METADATA": f"Name: dnspec\nVersion: {VERSION}\nLicense: Apache-2.0\n"},
            "License-Expression",
        ),
        (
            {**GOOD_WHEEL, f"{INFO}/METADATA": "Name: dnspec\nVersion: 0.0.1\nLicense-Expression: Apache-2.0\n"},
            "Version",
        ),
        (_without("dnspec/py.typed"), "dnspec/py.typed"),
        (_without("dnspec/pytest_plugin.py"), "dnspec/pytest_plugin.py"),
        ({**GOOD_WHEEL, "properties/test_boxes.py": ""}, "not the dnspec package"),
        ({**GOOD_WHEEL, "benchmarks/suite_speed.py": ""}, "not the dnspec package"),
        ({**GOOD_WHEEL, "dnspec/test_inside.py": ""}, "not the dnspec package"),
    ],
)
def test_a_wheel_missing_what_a_user_needs_or_carrying_tests_is_caught(tmp_path, files, named):
    problems = artifacts.wheel_problems(_wheel(tmp_path, files), VERSION)
    assert len(problems) == 1 and named in problems[0], problems


def test_a_wheel_named_for_another_version_is_caught(tmp_path):
    problems = artifacts.wheel_problems(_wheel(tmp_path, GOOD_WHEEL, "dnspec-0.0.1-py3-none-any.whl"), VERSION)
    assert any("not dnspec-9.8.7-py3-none-any.whl" in p for p in problems)


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ([m for m in GOOD_SDIST if m != "LICENSE"], "no LICENSE"),
        ([m for m in GOOD_SDIST if m != "dnspec/py.typed"], "no dnspec/py.typed"),
        ([*GOOD_SDIST, "properties/test_boxes.py"], "test suite"),
        ([*GOOD_SDIST, "ci/test.sh"], "test suite"),
    ],
)
def test_an_sdist_without_its_license_or_with_the_suite_is_caught(tmp_path, members, named):
    problems = artifacts.sdist_problems(_sdist(tmp_path, members), VERSION)
    assert len(problems) == 1 and named in problems[0], problems
    assert artifacts.main([str(_wheel(tmp_path, GOOD_WHEEL)), str(_sdist(tmp_path, members)), VERSION]) == 1
