"""Loading ``path/to/file.py:callable`` where the file lives: as a module of its package.

In RT-DETR-family repositories the CDN builder sits in a package
(``rtdetr_pytorch/src/zoo/rtdetr/denoising.py``) and imports its siblings relatively
(``from .utils import inverse_sigmoid``, ``from .box_ops import ...``) and sometimes its
parents (``from ...core import register``), while the packages' ``__init__.py`` files
import the whole model zoo (torchvision, yaml, a registry, every model). So the file is
loaded as a module of its own package chain, without running those ``__init__`` files:

- the chain is the file's folder and every folder above it that holds an ``__init__.py``
  (the file's own folder counts even without one);
- the chain is registered under a private top-level name (``_dnspec_tree_<hash>``), so it
  never clashes with an installed package of the same name (``src``, ``utils``, even
  ``torch``), and a finder on ``sys.meta_path`` resolves the private names: a folder
  becomes a package module whose ``__init__.py`` has not run, a ``.py`` file a module
  executed as usual; so the file's own imports load exactly the siblings they name;
- a name the file imports from a package that only that package's ``__init__.py``
  defines (``from . import MODELS`` with ``MODELS`` built in ``__init__``) runs that
  ``__init__`` then, once, and takes the name from it; when that fails, the error says
  which ``__init__`` was run and why.

A file may also import its repository's own top-level package by its absolute name
(``from src.core import register``, ``from util import box_ops``, ``from myproj.ops import
x``), as it does when run from the repository root. :class:`_OwnPackageFinder` resolves
such an import, made from a file of a tree dnspec loaded, when no installed module or
package has that name: the name is looked up as a folder (or ``name.py``) in the
importing file's folder and each folder above it, nearest first, and the import is an
alias of the same private modules above (the same module objects under both names, so
nothing is executed twice, no ``__init__`` runs that the file does not need, and there
is no circular import through an ``__init__`` that imports the whole zoo). An installed
package of that name wins (the file cannot mean a folder Python would not find). The
aliases live in ``sys.modules`` only while the file loads (so two trees with a ``utils``
folder each, or an installed ``utils`` imported later, never see each other's); those
made are listed in :data:`OWN_PACKAGES` for the verdict's header line.

An import that fails because a dependency is missing becomes one line
(:class:`TreeImportError`) naming the file that imports it, the missing package and
what to install; a name that is a folder of the user's tree is never sent to ``pip``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import traceback
import types
from pathlib import Path

PREFIX = "_dnspec_tree_"

# import name -> what pip installs it as, where they differ (the common ones in detector repos)
PIP_NAMES = {
    "yaml": "pyyaml",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "google.protobuf": "protobuf",
    "attr": "attrs",
    "dateutil": "python-dateutil",
}


class TreeImportError(ImportError):
    """Loading a file inside its repository failed; the message is one line saying why."""


def package_chain(path: Path) -> list[Path]:
    """The folders of the file's package chain, outermost first: its own folder, and each
    folder above it while that folder holds an ``__init__.py``."""
    folder = path.parent
    chain = [folder]
    while (folder / "__init__.py").is_file() and (folder.parent / "__init__.py").is_file():
        folder = folder.parent
        chain.insert(0, folder)
    return chain


def tree_name(root: Path) -> str:
    """The private top-level module name of the tree whose packages live in ``root``."""
    return PREFIX + hashlib.sha1(str(root).encode()).hexdigest()[:12]


class _TreePackage(types.ModuleType):
    """A package of the user's tree whose ``__init__.py`` has not run: its submodules
    import as usual; a name it does not have runs the ``__init__`` once, then is looked up."""

    def __getattr__(self, name: str):
        state = self.__dict__
        if name.startswith("__") and name != "__all__":
            raise AttributeError(name)
        if name != "__all__" and _submodule_exists(state.get("__path__", []), name):
            raise AttributeError(name)  # the import system imports the submodule
        if not state.get("_dnspec_init_ran"):
            state["_dnspec_init_ran"] = True
            _run_init(self)
            if name in state:
                return state[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


def _submodule_exists(paths, name: str) -> bool:
    return any((Path(p) / f"{name}.py").is_file() or (Path(p) / name).is_dir() for p in paths)


def _run_init(package: _TreePackage) -> None:
    """Run the package's ``__init__.py`` in its namespace (what a normal import does first)."""
    init = package.__dict__.get("_dnspec_init_file")
    if not init:
        return
    code = compile(Path(init).read_text(encoding="utf-8", errors="replace"), init, "exec")
    try:
        exec(code, package.__dict__)
    except ImportError as error:
        raise TreeImportError(
            f"a name was imported from {_display(package)} that only its __init__.py defines, and running "
            f"{init} failed: {_missing_line(error, Path(init).parent)}"
        ) from error


def _display(package) -> str:
    return package.__name__.split(".", 1)[1] if "." in package.__name__ else package.__name__


class _PackageLoader(importlib.abc.Loader):
    """Creates a :class:`_TreePackage` for a folder (its ``__init__`` left unrun)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def create_module(self, spec):
        module = _TreePackage(spec.name)
        init = self.folder / "__init__.py"
        module.__dict__["_dnspec_init_file"] = str(init) if init.is_file() else ""
        return module

    def exec_module(self, module) -> None:
        module.__path__ = [str(self.folder)]


class _TreeFinder(importlib.abc.MetaPathFinder):
    """Resolves ``_dnspec_tree_<hash>.a.b`` to ``root/a/b`` (a folder: package; a file: module)."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = name, root

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name and not fullname.startswith(self.name + "."):
            return None
        parts = fullname.split(".")[1:]
        place = self.root.joinpath(*parts)
        if place.is_dir():
            spec = importlib.machinery.ModuleSpec(fullname, _PackageLoader(place), is_package=True)
            spec.submodule_search_locations = [str(place)]
            return spec
        source = place.with_suffix(".py")
        if parts and source.is_file():
            return importlib.util.spec_from_file_location(fullname, source)
        return None


# top-level name -> the folder above the file that holds it: the aliases of the latest load_file
OWN_PACKAGES: dict[str, Path] = {}
_OWN_BY_MODULE: dict[str, dict] = {}  # module name -> the OWN_PACKAGES of its load
_ROOTS: set[Path] = set()  # the folders whose files may import their own packages by name


def _register_tree(root: Path) -> str:
    """Register the private name of the tree in ``root`` (finder and top module); return it."""
    name = tree_name(root)
    if not any(isinstance(f, _TreeFinder) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _TreeFinder(name, root))
    if name not in sys.modules:
        top = types.ModuleType(name, f"dnspec's private name for the packages in {root}")
        top.__path__ = [str(root)]
        sys.modules[name] = top
    return name


def _importer() -> Path | None:
    """The file whose ``import`` statement is being resolved: the first frame outside the
    import machinery (importlib's frozen modules, importlib/__init__.py, this file)."""
    frame = sys._getframe(2)
    skip = (__file__, importlib.__file__)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<frozen") and name not in skip:
            return Path(name)
        frame = frame.f_back
    return None


def own_package_folder(top: str, start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds a package folder or module
    named ``top`` (None: none does)."""
    for folder in (start, *start.parents):
        if (folder / top).is_dir() or (folder / f"{top}.py").is_file():
            return folder
    return None


class _AliasLoader(importlib.abc.Loader):
    """The module of an own-package import is the tree's private module of the same path."""

    def __init__(self, private: str):
        self.private = private

    def create_module(self, spec):
        return importlib.import_module(self.private)

    def exec_module(self, module) -> None:
        pass


class _OwnPackageFinder(importlib.abc.MetaPathFinder):
    """Resolves ``top.a.b`` imported by a file of a loaded tree, where ``top`` is a folder
    above that file and no installed module is called ``top`` (see the module docstring)."""

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top.startswith(PREFIX) or top in sys.builtin_module_names or top in sys.stdlib_module_names:
            return None
        folder = OWN_PACKAGES.get(top)
        if folder is None:
            if "." in fullname:
                return None
            importer = _importer()
            if importer is None or not any(_inside(str(importer), root) for root in _ROOTS):
                return None
            folder = own_package_folder(top, importer.parent)
            if folder is None or self._installed(top):
                return None
            OWN_PACKAGES[top] = folder
            _ROOTS.add(folder)
        private = f"{_register_tree(folder)}.{fullname}"
        place = folder.joinpath(*fullname.split("."))
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(private), is_package=place.is_dir())

    def _installed(self, top: str) -> bool:
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _TreeFinder) or not hasattr(finder, "find_spec"):
                continue
            try:
                if finder.find_spec(top, None) is not None:
                    return True
            except (ImportError, ValueError):
                continue
        return False


def load_file(path: str | Path):
    """Import the file at ``path`` as a module of its package chain (see the module
    docstring) and return the module. Raises :class:`TreeImportError` (one line) when a
    dependency is missing, and whatever the module raises otherwise."""
    path = Path(path).resolve()
    chain = package_chain(path)
    root = chain[0].parent
    name = _register_tree(root)
    _ROOTS.add(root)
    if not any(isinstance(f, _OwnPackageFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _OwnPackageFinder())
    OWN_PACKAGES.clear()
    module_name = ".".join([name, *(folder.name for folder in chain), path.stem])
    OWN_PACKAGES.update(_OWN_BY_MODULE.get(module_name, {}))  # loaded before: its imports ran then
    try:
        module = importlib.import_module(module_name)
        _OWN_BY_MODULE[module_name] = dict(OWN_PACKAGES)
        return module
    except TreeImportError:
        raise
    except ImportError as error:
        if isinstance(error, ModuleNotFoundError) and error.name:
            raise TreeImportError(_missing_line(error, root)) from error
        if "attempted relative import beyond top-level package" in str(error):
            raise TreeImportError(
                f"{_where(error, root)}: {error}: the import reaches above {chain[0].name}/, the outermost folder "
                f"of the file's package chain (each folder of a package needs an __init__.py)"
            ) from error
        raise
    finally:  # the real names were for the file's own imports: take them out of the process
        for alias in [n for n in sys.modules if n.split(".")[0] in OWN_PACKAGES]:
            if getattr(sys.modules[alias], "__name__", alias) != alias:
                del sys.modules[alias]


def _missing_line(error: ImportError, root: Path) -> str:
    """'src/zoo/rtdetr/box_ops.py line 3 imports 'torchvision', which is not installed: pip install torchvision'."""
    missing = getattr(error, "name", None)
    if not missing or not isinstance(error, ModuleNotFoundError):
        return f"{_where(error, root)}: {type(error).__name__}: {error}"
    if missing.startswith(PREFIX):
        inside = missing.split(".", 1)[1] if "." in missing else missing
        return f"{_where(error, root)} imports {inside!r}, which is not a module or package in {root}"
    top = missing.split(".")[0]
    folder = own_package_folder(top, root)
    if folder is not None:  # a folder of the user's tree: never a pip install
        return (
            f"{_where(error, root)} imports {missing!r}, and {folder / top} is a folder of this repository, but an "
            f"installed package named {top!r} was found first, which has no {missing!r}"
        )
    package = PIP_NAMES.get(missing, PIP_NAMES.get(top, top))
    return f"{_where(error, root)} imports {missing!r}, which is not installed: pip install {package}"


def _where(error: BaseException, root: Path) -> str:
    """The innermost file of the tree in the error's traceback (relative to the tree's
    parent folder, with its line), and the file that imported it when that is another."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if _inside(f.filename, root)]
    if not frames:
        return "the file"

    def place(frame):
        return f"{os.path.relpath(frame.filename, root.parent)} line {frame.lineno}"

    inner, outer = frames[-1], frames[0]
    if outer.filename != inner.filename:
        return f"{place(inner)} (imported from {place(outer)})"
    return place(inner)


def _inside(filename: str, root: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(root)
        return True
    except (ValueError, OSError):
        return False
