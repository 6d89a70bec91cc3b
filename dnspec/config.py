"""``[tool.dnspec]`` in ``pyproject.toml``: a project's dnspec settings, written once and
reviewed in a pull request, the way it configures pytest, ruff or mypy.

Found as pytest and ruff find theirs: the nearest ``pyproject.toml`` with a ``[tool.dnspec]``
table, walking up from the working folder (:func:`find`); ``--config FILE`` names another
(:func:`load`). Keys (:data:`KEYS`)::

    [tool.dnspec]
    spec = "src/zoo/rtdetr/denoising.py:get_contrastive_denoising_training_group"  # or a list
    profile = "ci"            # ci | dev | thorough
    device = "cpu"
    dtype = "float32"         # float32 | float64 | bfloat16 | float16
    regimes = ["common", "box_noise_scale_0"]
    convention = "rtdetr"
    contract = "dfine"        # a lineage's contract (dnspec contracts); default rtdetr
    against = "upstream/denoising.py:get_contrastive_denoising_training_group"  # THEIRS: verify --against it
    jobs = 2
    time_limit = 30           # seconds per call; 0: none
    budget = 1800             # seconds for the whole run; 0: none
    reports = ["dnspec.xml", "dnspec.json"]
    bind = { class_embed = "class_embeds" }  # RT-DETR's argument = the builder's parameter (docs/adapters.md)
    accept = [
        { id = "boxes.crossed", reason = "D-FINE keeps |w| on purpose" },
        { id = "raises:UnboundLocalError@box_noise_scale_0", reason = "we never train with scale 0" },
    ]

A SPEC (``spec``, ``against``, an accepted entry's ``spec``) or report path in the file is
relative to the file's folder. Command-line options
override the file. Every mistake (unknown key, wrong type, a value out of range, an accepted
id that names no known check or regime, an accepted entry without a reason) is a
:class:`ConfigError` whose one line names the key and the file; the commands exit 2 with it.

Read with the standard library's :mod:`tomllib` (``tomli`` where Python is older than 3.11).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from dnspec.running.accept import Accepted, id_problem

FILE_NAME = "pyproject.toml"
KEYS = (
    "spec",
    "profile",
    "device",
    "dtype",
    "regimes",
    "convention",
    "contract",
    "against",
    "jobs",
    "time_limit",
    "budget",
    "reports",
    "bind",
    "accept",
)
ACCEPT_KEYS = ("id", "reason", "spec")

DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")  # the dtypes of generated cases, by name


class ConfigError(Exception):
    """A mistake in the configuration: one line naming the key and the file."""


@dataclass
class Config:
    """The settings of one ``[tool.dnspec]`` table (None: not set there)."""

    path: str | None = None  # the file it was read from (None: no configuration)
    specs: list[str] = field(default_factory=list)  # paths made relative to the working folder
    profile: str | None = None
    device: str | None = None
    dtype: str | None = None
    regimes: list[str] | None = None
    convention: str | None = None
    contract: str | None = None  # a lineage contract's name (dnspec.contract.lineages.NAMES)
    against: str | None = None  # THEIRS, a SPEC made relative to the working folder like specs
    jobs: int | None = None
    time_limit: float | None = None
    budget: float | None = None  # seconds for a whole verify run (0: none)
    reports: list[str] = field(default_factory=list)
    bind: dict = field(default_factory=dict)  # {RT-DETR argument: the builder's parameter}
    accept: list[Accepted] = field(default_factory=list)


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ModuleNotFoundError:  # pragma: no cover - tomli is a dependency below 3.11
        raise ConfigError("reading pyproject.toml needs tomli on Python < 3.11: pip install tomli") from None
    return tomli


def _read(path: str) -> dict:
    toml = _toml()
    try:
        with open(path, "rb") as handle:
            return toml.load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror or error})") from None
    except toml.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None


def find(start: str | None = None) -> str | None:
    """The nearest ``pyproject.toml`` with a ``[tool.dnspec]`` table, in ``start`` (default:
    the working folder) or a folder above it; None when there is none."""
    folder = os.path.abspath(start or os.getcwd())
    while True:
        candidate = os.path.join(folder, FILE_NAME)
        if os.path.isfile(candidate):
            try:
                data = _read(candidate)
            except ConfigError:
                data = None
            if data is None or "dnspec" in data.get("tool", {}):
                return candidate  # a broken file is reported by load, not skipped silently
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def load(path: str | None = None, start: str | None = None) -> Config:
    """The configuration in ``path`` (``--config FILE``), else in the nearest
    ``pyproject.toml`` found by :func:`find`; an empty Config when there is none."""
    if path is None:
        path = find(start)
        if path is None:
            return Config()
    elif not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such file")
    path = os.path.abspath(path)
    table = _read(path).get("tool", {}).get("dnspec")
    if table is None:
        return Config(path=path)
    return parse(table, path)


def _where(path: str, key: str) -> str:
    shown = os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path
    return f"{shown}: [tool.dnspec] {key}"


def _strings(value, key: str, path: str, one_allowed: bool = True) -> list[str]:
    if isinstance(value, str) and one_allowed:
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    wanted = "a string or a list of strings" if one_allowed else "a list of strings"
    raise ConfigError(f"{_where(path, key)}: must be {wanted}, not {value!r}")


def _choice(value, key: str, path: str, choices) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{_where(path, key)}: must be a string, not {value!r}")
    if value not in choices:
        raise ConfigError(f"{_where(path, key)}: {value!r} is not one of {', '.join(choices)}")
    return value


def resolve_spec(spec: str, folder: str) -> str:
    """A SPEC written in a file in ``folder``: a file path in it made relative to the
    working folder (absolute when outside it); a module or built-in name unchanged."""
    file_part, colon, name = spec.rpartition(":")
    if not colon or not (file_part.endswith(".py") or "/" in file_part or os.sep in file_part):
        return spec
    return _relative(os.path.join(folder, file_part)) + ":" + name


def _relative(path: str) -> str:
    path = os.path.abspath(path)
    return os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path


def parse(table, path: str) -> Config:
    """Check ``[tool.dnspec]`` (a dict read from ``path``) and return its Config."""
    from dnspec.contract.lineages import NAMES as CONTRACTS
    from dnspec.generation.profiles import PROFILES
    from dnspec.generation.regimes import NAMES

    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.dnspec] must be a table, not {table!r}")
    config = Config(path=path)
    folder = os.path.dirname(path)
    for key, value in table.items():
        if key not in KEYS:
            raise ConfigError(f"{_where(path, key)}: unknown key; keys: {', '.join(KEYS)}")
        if key == "spec":
            config.specs = [resolve_spec(s, folder) for s in _strings(value, key, path)]
        elif key == "profile":
            config.profile = _choice(value, key, path, PROFILES)
        elif key == "device":
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"{_where(path, key)}: must be a device name such as 'cpu' or 'cuda:0', not {value!r}"
                )
            config.device = value
        elif key == "dtype":
            config.dtype = _choice(value, key, path, DTYPE_NAMES)
        elif key == "regimes":
            config.regimes = _strings(value, key, path, one_allowed=False)
            for name in config.regimes:
                if name not in NAMES:
                    raise ConfigError(f"{_where(path, key)}: {name!r} is no regime; regimes: {', '.join(NAMES)}")
        elif key == "convention":
            config.convention = _choice(value, key, path, ("rtdetr",))
        elif key == "contract":
            config.contract = _choice(value, key, path, CONTRACTS)
        elif key == "against":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{_where(path, key)}: must be a SPEC (as for dnspec verify), not {value!r}")
            config.against = resolve_spec(value, folder)
        elif key == "jobs":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{_where(path, key)}: must be a whole number at least 1, not {value!r}")
            config.jobs = value
        elif key == "time_limit":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{_where(path, key)}: must be a number of seconds (0: no limit), not {value!r}")
            config.time_limit = float(value)
        elif key == "budget":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{_where(path, key)}: must be a number of seconds (0: no budget), not {value!r}")
            config.budget = float(value)
        elif key == "reports":
            config.reports = [_relative(os.path.join(folder, p)) for p in _strings(value, key, path)]
        elif key == "bind":
            from dnspec.implementations.binding import parse_bind

            if not isinstance(value, dict):
                raise ConfigError(
                    f'{_where(path, key)}: must be a table {{ num_queries = "PARAM", ... }}, not {value!r}'
                )
            try:
                config.bind = parse_bind(value, _where(path, key) + ":")
            except ValueError as error:
                raise ConfigError(str(error)) from None
        elif key == "accept":
            config.accept = _accepted(value, path, folder)
    return config


def _accepted(value, path: str, folder: str) -> list[Accepted]:
    if not isinstance(value, list):
        raise ConfigError(
            f'{_where(path, "accept")}: must be a list of {{ id = "...", reason = "..." }}, not {value!r}'
        )
    out = []
    shown = os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path
    for index, entry in enumerate(value):
        key = f"accept[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f'{_where(path, key)}: must be a table {{ id = "...", reason = "..." }}, not {entry!r}')
        for name in entry:
            if name not in ACCEPT_KEYS:
                raise ConfigError(f"{_where(path, f'{key}.{name}')}: unknown key; keys: {', '.join(ACCEPT_KEYS)}")
        for name in ("id", "reason"):
            if name not in entry:
                raise ConfigError(
                    f"{_where(path, f'{key}.{name}')}: missing (every accepted divergence needs an id and a reason)"
                )
        for name, text in entry.items():
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{_where(path, f'{key}.{name}')}: must be a non-empty string, not {text!r}")
        problem = id_problem(entry["id"])
        if problem:
            raise ConfigError(f"{_where(path, f'{key}.id')}: {problem}")
        spec = resolve_spec(entry["spec"], folder) if "spec" in entry else ""
        out.append(Accepted(entry["id"], entry["reason"].strip(), shown, spec))
    return out
