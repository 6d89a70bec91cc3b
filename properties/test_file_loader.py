"""``path/to/file.py:callable`` inside a repository (dnspec.implementations.file_loader): relative imports
work, package ``__init__`` files that import the world are not run, a name that only an
``__init__`` defines still imports, a missing dependency is one line, and a repository
package named like an installed one does not clash with it. The trees are in
properties/repo_fixtures/ (see its README)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dnspec.cli import main
from dnspec.implementations.file_loader import PREFIX, TreeImportError, load_file, package_chain
from dnspec.implementations.specs import SpecError, load_implementation

TREES = Path(__file__).parent / "repo_fixtures"
RTDETR = TREES / "rtdetr_fork" / "src" / "zoo" / "rtdetr"
FUNCTION = "get_contrastive_denoising_training_group"


def _tree_modules(suffix: str) -> list[str]:
    return [name for name in sys.modules if name.startswith(PREFIX) and name.endswith(suffix)]


def test_the_package_chain_is_every_folder_with_an_init_up_to_the_first_without():
    chain = package_chain((RTDETR / "denoising.py").resolve())
    assert [folder.name for folder in chain] == ["src", "zoo", "rtdetr"]
    # a file outside any package still gets its own folder as its package
    assert [f.name for f in package_chain((TREES / "README.md").resolve())] == ["repo_fixtures"]


def test_a_builder_with_sibling_and_parent_relative_imports_loads_without_the_heavy_inits():
    impl = load_implementation(f"{RTDETR / 'denoising.py'}:{FUNCTION}")
    assert callable(impl.fn)
    module = sys.modules[impl.fn.__module__]
    assert module.__name__.startswith(PREFIX) and module.__name__.endswith(".src.zoo.rtdetr.denoising")
    # the siblings and the parent's submodule it names were imported ...
    assert _tree_modules(".src.zoo.rtdetr.utils") and _tree_modules(".src.zoo.rtdetr.box_ops")
    assert _tree_modules(".src.misc.dist")
    # ... and none of the __init__ files that import modules not installed here ran
    package = sys.modules[module.__name__.rsplit(".", 1)[0]]
    assert not package.__dict__.get("_dnspec_init_ran")
    assert not sys.modules[module.__name__.split(".src.")[0] + ".src"].__dict__.get("_dnspec_init_ran")
    assert not _tree_modules(".src.zoo.rtdetr.rtdetr")  # the model module its __init__ would import


def test_a_name_only_an_init_defines_runs_that_init():
    """``from ...core import register``: register is defined by src/core/__init__.py (it
    is not a submodule), so that __init__ runs, once, and the name comes from it."""
    load_file(RTDETR / "denoising.py")
    core = sys.modules[_tree_modules(".src.core")[0]]
    assert core.INIT_RAN is True and callable(core.register)
    workspace = sys.modules[_tree_modules(".src.core.workspace")[0]]
    assert FUNCTION in workspace.REGISTERED  # the builder's decorator ran against the tree's own registry


def test_a_missing_dependency_of_a_sibling_is_one_line_naming_it():
    with pytest.raises(TreeImportError) as raised:
        load_file(RTDETR / "denoising_needs_scipy_extra.py")
    message = str(raised.value)
    assert "\n" not in message
    assert "rtdetr_fork/src/zoo/rtdetr/matcher.py line 1" in message
    assert "imported from rtdetr_fork/src/zoo/rtdetr/denoising_needs_scipy_extra.py line 2" in message
    assert (
        "'dnspec_fixture_missing_scipy_extra', which is not installed: pip install dnspec_fixture_missing_scipy_extra"
        in message
    )


def test_dnspec_verify_exits_2_with_that_line(capsys):
    code = main(["verify", f"{RTDETR / 'denoising_needs_scipy_extra.py'}:{FUNCTION}", "--profile", "ci"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "matcher.py line 1" in captured.err and "pip install dnspec_fixture_missing_scipy_extra" in captured.err


def test_a_package_named_like_an_installed_one_does_not_shadow_it():
    """The tree's top package is called ``yaml``, and its __init__ files raise if run:
    the builder's relative imports reach its siblings, its absolute ``import yaml`` the
    installed PyYAML."""
    pytest.importorskip("yaml")
    impl = load_implementation(f"{TREES / 'shadowing_fork' / 'yaml' / 'detr' / 'denoising.py'}:build")
    module = sys.modules[impl.fn.__module__]
    assert module.REAL_YAML and module.CONFIG == {"num_denoising": 100, "label_noise_ratio": 0.5}
    import yaml

    assert hasattr(yaml, "safe_load") and "shadowing_fork" not in (yaml.__file__ or "")


def test_a_missing_attribute_and_a_missing_sibling_say_so():
    with pytest.raises(SpecError, match="has no attribute 'no_such_function'"):
        load_implementation(f"{RTDETR / 'denoising.py'}:no_such_function")


def test_the_faithful_copy_conforms_and_is_bit_compatible(capsys):
    """RT-DETR's builder as a fork keeps it (float32 box buffer): exit 0, and the
    compatibility line certifies the same numbers as the reference under the same seed."""
    code = main(["verify", f"{RTDETR / 'denoising.py'}:{FUNCTION}", "--profile", "ci", "--max-examples", "10"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "compatibility: bit-compatible with RT-DETR under the same torch seed" in out
    assert "DIVERGENCE" not in out


def test_the_dfine_pattern_reports_the_scale_0_crash_once(capsys):
    """The box output assigned only under ``if box_noise_scale > 0``, and crossed boxes
    flipped to |w|: two divergences, each printed once; the crash in box_noise_scale == 0
    only, the |w| in the boxes of crossed rows."""
    code = main(["verify", f"{RTDETR / 'denoising_dfine.py'}:{FUNCTION}", "--profile", "ci", "--max-examples", "10"])
    out = capsys.readouterr().out
    assert code == 1
    blocks = [line for line in out.splitlines() if line.startswith("DIVERGENCE ")]
    assert len(blocks) == 2, blocks
    crash = next(b for b in blocks if "UnboundLocalError" in b)
    assert crash.endswith("in box_noise_scale == 0  [id raises:UnboundLocalError@box_noise_scale_0]")
    assert "denoising_dfine.py:" in crash
    assert any(b.startswith("DIVERGENCE") and "boxes.crossed, in the common regime" in b for b in blocks)
    assert out.count("cannot access local variable") == 1  # the crash's message, once
    structure = next(line for line in out.splitlines() if line.startswith("FAIL") and line.split()[1] == "structure")
    assert structure.endswith("holds except in box_noise_scale == 0 (divergence 2)")
    assert "empty-batch convention: meta only: (None, None, None, dn_meta) with no groups (D-FINE, DEIM)" in out


# --- own-package absolute imports (issue 25 §1) ------------------------------------------------

ABS = TREES / "abs_import_fork"


def test_an_own_package_absolute_import_loads_without_running_unrelated_inits():
    """``from src.core import register`` in abs_import_fork: src/__init__.py and
    src/zoo/__init__.py raise if run (src's imports its submodules absolutely, the circular
    shape); only src/core/__init__.py, which defines register, runs. The real name is
    gone from sys.modules afterwards."""
    from dnspec.implementations.file_loader import OWN_PACKAGES

    impl = load_implementation(f"{ABS / 'src' / 'zoo' / 'rtdetr' / 'denoising.py'}:{FUNCTION}")
    assert callable(impl.fn) and OWN_PACKAGES == {"src": ABS}
    assert any(note.startswith("loaded: ") and "'src' from" in note for note in impl.notes)
    assert "src" not in sys.modules and not any(name.startswith("src.") for name in sys.modules)


def test_a_top_level_folder_without_init_imports_by_name():
    """``from util import box_ops`` from models/, util/ a folder without __init__.py."""
    impl = load_implementation(f"{ABS / 'models' / 'dn_components.py'}:{FUNCTION}")
    assert callable(impl.fn) and any("'util' from" in note for note in impl.notes)
    assert "util" not in sys.modules


def _verify_structure(spec) -> tuple[int, str]:
    return main(["verify", spec, "--profile", "ci", "--max-examples", "3", "--only", "structure"])


def test_the_own_package_fork_conforms_from_its_root_and_from_another_folder(monkeypatch, tmp_path, capsys):
    for where, spec in ((ABS, "src/zoo/rtdetr/denoising.py"), (tmp_path, str(ABS / "src/zoo/rtdetr/denoising.py"))):
        monkeypatch.chdir(where)
        code = _verify_structure(f"{spec}:{FUNCTION}")
        out = capsys.readouterr().out
        assert code == 0, out
        assert "loaded: as a module of its package chain; its own package imported by absolute name: 'src'" in out


def test_a_missing_module_of_an_own_package_is_never_a_pip_install(tmp_path):
    (tmp_path / "proj" / "ops").mkdir(parents=True)
    (tmp_path / "proj" / "__init__.py").write_text("")
    (tmp_path / "proj" / "ops" / "__init__.py").write_text("")
    (tmp_path / "proj" / "dn.py").write_text("from proj.ops.nothing_here import x  # noqa\n")
    with pytest.raises(TreeImportError) as raised:
        load_file(tmp_path / "proj" / "dn.py")
    assert "pip install" not in str(raised.value) and "nothing_here" in str(raised.value)


def test_a_third_party_module_still_gets_its_pip_install(tmp_path):
    (tmp_path / "dn.py").write_text("import dnspec_fixture_not_installed_anywhere  # noqa\n")
    with pytest.raises(TreeImportError, match="pip install dnspec_fixture_not_installed_anywhere"):
        load_file(tmp_path / "dn.py")


# --- the user's tree as found, draws independent of it ----------------------------------------


def test_verify_leaves_no_hypothesis_folder_in_the_working_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    work = tmp_path / "fork"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = f"{ABS / 'models' / 'dn_components.py'}:{FUNCTION}"
    assert main(["verify", spec, "--profile", "dev", "--max-examples", "3", "--only", "structure"]) == 0
    capsys.readouterr()
    assert not (work / ".hypothesis").exists() and list(work.iterdir()) == []


def _draws() -> list:
    from hypothesis import Phase, given, settings
    from hypothesis import strategies as st

    seen = []

    @settings(derandomize=True, database=None, max_examples=150, phases=[Phase.generate])
    @given(st.lists(st.floats(allow_nan=False), min_size=3, max_size=3))
    def draw(values):
        seen.append(values)

    draw()
    return seen


def _import_constants_module(folder: Path, name: str, constants: str) -> None:
    import importlib

    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(f"CONSTANTS = ({constants})\n")
    sys.path.insert(0, str(folder))
    try:
        importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def test_draws_do_not_depend_on_unrelated_local_files(tmp_path):
    """Hypothesis draws constants from local modules' source; dnspec's runs do not: the
    same draws before and after an unrelated module full of constants is imported. The
    control shows the mechanism is real: outside dnspec's runs the draws change."""
    from dnspec.generation import profiles

    assert profiles.LOCAL_CONSTANTS_HOOK, "Hypothesis renamed _get_local_constants: look at profiles.outside_the_tree"
    with profiles.outside_the_tree():
        before = _draws()
        _import_constants_module(tmp_path / "tree", "unrelated_constants_a", "123456.789, -98765.4321, 31337.25")
        assert _draws() == before
    # the control: the hook Hypothesis draws local constants from sees the module outside
    # dnspec's runs, and nothing inside them
    from hypothesis.internal.conjecture import providers

    assert 123456.789 in providers._get_local_constants().floats
    with profiles.outside_the_tree():
        assert 123456.789 not in providers._get_local_constants().floats
