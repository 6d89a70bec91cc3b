"""Check the contents of dnspec's release artifacts (run by ci/release.sh after `python -m build`).

    python ci/artifacts.py WHEEL SDIST VERSION     exit 0 when both are right, 1 naming each problem

The wheel is right when it is named for VERSION, carries what a user needs (the console
script ``dnspec = dnspec.cli:main``, the pytest11 entry point ``dnspec =
dnspec.pytest_plugin``, the Apache-2.0 license file under ``.dist-info/licenses/`` and its
``License-Expression``, ``dnspec/py.typed``, dnspec's modules) and nothing else: every entry
lies under ``dnspec/`` or the ``.dist-info`` folder, and none is a test file
(``test_*.py``, ``conftest.py``). The sdist is right when it carries the license and
``pyproject.toml`` and none of the repository's test suite, benchmarks or CI
(``properties/``, ``benchmarks/``, ``ci/``, ``.ci/``, ``docs/``).
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

NOT_IN_SDIST = ("properties", "benchmarks", "ci", ".ci", "docs")


def wheel_problems(wheel: Path, version: str) -> list[str]:
    problems = []
    if wheel.name != f"dnspec-{version}-py3-none-any.whl":
        problems.append(f"the wheel is named {wheel.name}, not dnspec-{version}-py3-none-any.whl")
    info = f"dnspec-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()

        def text(name: str) -> str:
            return archive.read(name).decode("utf-8") if name in names else ""

        entry_points = text(f"{info}/entry_points.txt")
        license_text = text(f"{info}/licenses/LICENSE")
        metadata = text(f"{info}/METADATA")
    if "[pytest11]\ndnspec = dnspec.pytest_plugin" not in entry_points:
        problems.append("no pytest11 entry point 'dnspec = dnspec.pytest_plugin'")
    if "[console_scripts]\ndnspec = dnspec.cli:main" not in entry_points:
        problems.append("no console script 'dnspec = dnspec.cli:main'")
    if "Apache License" not in license_text or "Version 2.0" not in license_text:
        problems.append(f"no license file ({info}/licenses/LICENSE with the Apache-2.0 text)")
    if "License-Expression: Apache-2.0" not in metadata:
        problems.append("METADATA has no 'License-Expression: Apache-2.0'")
    if f"Version: {version}\n" not in metadata:
        problems.append(f"METADATA does not say Version: {version}")
    for module in ("dnspec/__init__.py", "dnspec/cli.py", "dnspec/pytest_plugin.py", "dnspec/py.typed"):
        if module not in names:
            problems.append(f"no {module}")
    stray = [n for n in names if n.split("/")[0] not in ("dnspec", info)]
    tests = [n for n in names if n.rsplit("/", 1)[-1].startswith("test_") or n.endswith("/conftest.py")]
    if stray or tests:
        problems.append(f"files that are not the dnspec package: {(stray + tests)[:5]}")
    return problems


def sdist_problems(sdist: Path, version: str) -> list[str]:
    problems = []
    top = f"dnspec-{version}"
    with tarfile.open(sdist) as archive:
        members = [m.split("/", 1)[1] for m in archive.getnames() if m.startswith(top + "/")]
    for needed in ("LICENSE", "pyproject.toml", "dnspec/__init__.py", "dnspec/py.typed"):
        if needed not in members:
            problems.append(f"the sdist has no {needed}")
    suite = [m for m in members if m.split("/")[0] in NOT_IN_SDIST]
    if suite:
        problems.append(f"the sdist carries the test suite, benchmarks or CI: {suite[:5]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python ci/artifacts.py WHEEL SDIST VERSION", file=sys.stderr)
        return 2
    wheel, sdist, version = Path(args[0]), Path(args[1]), args[2]
    problems = wheel_problems(wheel, version) + sdist_problems(sdist, version)
    for problem in problems:
        print(f"ci/artifacts.py: {problem}", file=sys.stderr)
    if not problems:
        print(f"ci/artifacts.py: {wheel.name} and {sdist.name} carry what a user needs and no test suite")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
