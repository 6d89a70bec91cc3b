"""The documentation describes what the code has: every registered property in the table of
docs/properties.md, every input regime in docs/regimes.md, every empty-batch convention in
docs/conventions.md and every fast builder it names; and the README stays a front door (at
most about 250 lines) whose map links every page of docs/; the install lines of the README and
docs/ci.md work today (a clone, or the wheel of this version: ci/release.sh runs the README's
line), and the version is written once, where ``dnspec --version`` reads it."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_every_property_is_in_the_properties_table():
    from dnspec.checks.suite import PROPERTIES

    page = _page("properties.md")
    rows = {line.split("|")[1].strip().strip("`") for line in page.splitlines() if line.startswith("| `")}
    assert {p.name for p in PROPERTIES} <= rows, {p.name for p in PROPERTIES} - rows


def test_every_regime_is_in_the_regimes_page_with_its_title():
    from dnspec.generation.regimes import REGIMES

    page = _page("regimes.md")
    for regime in REGIMES:
        assert f"| `{regime.name}` | {regime.title} |" in page, regime.name


@pytest.mark.parametrize("name", ["four Nones", "dummy group", "meta only", "empty group"])
def test_every_empty_batch_convention_is_described(name):
    assert f"| {name} |" in _page("conventions.md")


def test_the_fast_builders_are_named():
    from dnspec.implementations.fast import builtin_implementations

    page = _page("properties.md")
    for name in builtin_implementations():
        assert f"`{name}`" in page, name


def test_the_readme_is_a_front_door_that_maps_every_page():
    assert len(README.splitlines()) <= 250
    for section in ("## Set up and run", "## Checking your fork", "## Using it in CI", "## Reading a verdict"):
        assert section in README, section
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert len(pages) >= 10
    unlinked = [name for name in pages if f"(docs/{name})" not in README]
    assert not unlinked, unlinked


# the install lines (issue 24): dnspec is not on the package index, so every page says how to
# install it from a clone or from the wheel built from one, and ci/release.sh runs the
# README's GitHub Actions line as written on the wheel it builds
WHEEL_STEP = re.compile(r"^- run: (pip install (?:[\w.\-]+/)*dnspec-(?P<version>[^-\s]+)-py3-none-any\.whl)$", re.M)


def _version_in_source() -> str:
    (version,) = re.findall(r'^__version__ = "([^"]+)"$', (ROOT / "dnspec" / "__init__.py").read_text(), re.M)
    return version


@pytest.mark.parametrize("page", ["README.md", "docs/ci.md"])
def test_no_page_installs_dnspec_from_the_index_it_is_not_on(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    assert not re.search(r"pip install ['\"]?dnspec(?![\w/\-.])", text), page
    assert "pip install path/to/dnspec" in text, page  # from a clone


def test_the_readmes_ci_step_installs_the_wheel_of_this_version():
    steps = WHEEL_STEP.findall(README)
    assert len(steps) == 1, (
        "the README's GitHub Actions example has one '- run: pip install .../dnspec-VERSION-py3-none-any.whl'"
    )
    assert WHEEL_STEP.search(README)["version"] == _version_in_source()
    # ci/release.sh reads the line with the same shape and runs it on the wheel it builds
    assert "- run: \\(pip install .*dnspec-[^ ]*\\.whl\\)$" in (ROOT / "ci" / "release.sh").read_text()


def test_every_wheel_the_pages_name_is_this_versions():
    version = _version_in_source()
    for page in ("README.md", "docs/ci.md"):
        named = re.findall(r"dnspec-([^-\s`]+)-py3-none-any\.whl", (ROOT / page).read_text(encoding="utf-8"))
        assert named and set(named) == {version}, (page, named)
    assert f"pip install tools/dnspec-{version}-py3-none-any.whl" in _page("ci.md")  # its GitHub Actions job


def test_the_version_is_written_once_and_dnspec_version_prints_it(capsys):
    import importlib.metadata

    import dnspec
    from dnspec.cli import build_parser, main

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dnspec.__version__"}
    assert dnspec.__version__ == _version_in_source() == importlib.metadata.version("dnspec")
    assert main(["--version"]) == 0  # the fast path: no command imported
    assert capsys.readouterr().out == f"dnspec {dnspec.__version__}\n"
    with pytest.raises(SystemExit) as exit_:  # argparse's, for the help: the same line
        build_parser(["--version"]).parse_args(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"dnspec {dnspec.__version__}\n"
