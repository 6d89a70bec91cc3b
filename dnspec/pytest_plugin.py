"""dnspec's pytest plugin (registered through the ``pytest11`` entry point, so the
suite works from an installed package too).

Options:
  --impl SPEC            implementation(s) under test; repeatable; default ``reference``
  --strict-advisories    enforce the upstream advisories (violations fail)
  --device DEVICE        where the generated cases live (default cpu); the device
                         agreement tests always compare cpu with cpu and cuda
  --dtype DTYPE          dtype of the generated boxes and embedding (default float32)
  --dnspec-profile NAME  Hypothesis profile (ci, dev, thorough); also DNSPEC_PROFILE,
                         or Hypothesis' own --hypothesis-profile

  --regime NAME          input regimes to check contract properties in (repeatable;
                         default: the common regime and every edge regime)
  --convention rtdetr    require RT-DETR's four Nones for an all-empty batch (default: any
                         known empty-batch convention, checked for consistency)

  --dnspec [SPEC]        collect dnspec's property items (below) for SPEC, repeatable; with no
                         SPEC, the spec(s) of ``[tool.dnspec]`` in pyproject.toml (:mod:`dnspec.config`)
  --contract NAME        judge the items by a lineage's contract (``dnspec contracts``; default:
                         ``contract`` in ``[tool.dnspec]``, else rtdetr)
  --against SPEC         judge the items with THEIRS as the oracle, as ``dnspec verify --against``:
                         THEIRS' divergences are accepted (default: ``against`` in ``[tool.dnspec]``)

**Items from the installed package** (``pytest --dnspec``, the way pytest-mypy adds its
items): in any repository with dnspec installed, no test file needed. One item per property
(variant) and input regime, ``dnspec::boxes[common]``, and one per property checked on a
fixed workload, ``dnspec::label_flip_rate[fixed_workload]`` (several SPECs:
``dnspec[SPEC]::...``), built and judged by :mod:`dnspec.pytest_items`: from the runner's
public pipeline (:func:`dnspec.running.runner.run`, one run per SPEC and regime), never
from calling the implementation here; one failed item per divergence (the others that
meet it are skipped as not judged, naming it and the failing item). An item fails when
its property fails in its regime; when every divergence it shows is accepted (``accept``
in ``[tool.dnspec]``: :mod:`dnspec.running.accept`) it is ``xfail(strict=True)`` with the
reasons; an item where an accepted check of its property is expected (the check's own
property, in the accepted regime) but no longer fails is an XPASS(strict) failure: remove
it from accept. With ``--against THEIRS`` (or ``against`` in ``[tool.dnspec]``) each run
of MINE follows a run of THEIRS with the same options, as ``dnspec verify --against``
does: MINE's divergences that THEIRS shows too are accepted, xfail(strict) "shared with
THEIRS". Advisories xfail (not strict) unless ``--strict-advisories``. Items are ordered
regime by regime, and under xdist's default distribution (``-n auto``) each regime's items
go to one worker together (:func:`pytest_xdist_make_scheduler`): one run per regime in all,
as ``--dist loadgroup`` gives too. What pytest shows of these items and of the
tests of ``--impl`` (captured output, failure text, reasons) is cleaned as dnspec's
reports are (:func:`pytest_runtest_makereport`): no control character, no line that
starts with ``::`` (a GitHub workflow command).

Tests take the fixtures ``impl`` (parametrized over --impl via pytest_generate_tests,
as kornia does), ``regime`` (parametrized over the input regimes of
:mod:`dnspec.generation.regimes`, so a test id names its regime: ``test_boxes[reference-common]``)
and ``options`` (a :class:`dnspec.checks.suite.RunOptions`), and call :func:`check_property`.
It reads the property's result in that regime from one sweep per implementation and
regime (every contract property checked on each generated case, as ``dnspec verify``
does, computed once per session), shrinks a failure on its own, and maps a skipped
property to pytest.skip and an advisory that is not enforced to pytest.xfail (reported,
never failing).
"""

from __future__ import annotations

import os

import pytest
import torch

from dnspec.pytest_items import DnspecCollector, DnspecItem, load

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pytest_addoption(parser):
    group = parser.getgroup("dnspec", "dnspec: CDN builder properties")
    group.addoption(
        "--impl",
        action="append",
        default=None,
        metavar="SPEC",
        help="implementation under test: built-in name, package.module:callable or path/file.py:callable (repeatable; default: reference)",
    )
    group.addoption(
        "--strict-advisories", action="store_true", default=False, help="treat violated upstream advisories as failures"
    )
    group.addoption("--device", default="cpu", help="device the generated cases live on (default: cpu)")
    group.addoption(
        "--dtype",
        default="float32",
        choices=sorted(DTYPES),
        help="dtype of the generated boxes and class embedding (default: float32)",
    )
    group.addoption("--dnspec-profile", default=None, help="Hypothesis profile: ci, dev or thorough")
    group.addoption(
        "--convention",
        default=None,
        choices=["rtdetr"],
        help="require RT-DETR's four Nones for an all-empty batch (default: any known convention)",
    )
    group.addoption(
        "--dnspec",
        action="append",
        nargs="?",
        const="",
        default=None,
        metavar="SPEC",
        help="collect dnspec's property items for SPEC (repeatable; no SPEC: the spec(s) of [tool.dnspec])",
    )
    from dnspec.contract.lineages import NAMES as CONTRACTS

    group.addoption(
        "--contract",
        default=None,
        choices=list(CONTRACTS),
        help="--dnspec items: judge by this lineage's contract (default: contract in [tool.dnspec], else rtdetr)",
    )
    group.addoption(
        "--against",
        default=None,
        metavar="SPEC",
        help="--dnspec items: judge with THEIRS as the oracle and accept its divergences, as dnspec verify "
        "--against (default: against in [tool.dnspec])",
    )
    group.addoption(
        "--regime",
        action="append",
        default=None,
        metavar="NAME",
        help="input regime(s) for the contract properties (repeatable; default: all of dnspec.generation.regimes.NAMES)",
    )


def pytest_configure(config):
    from dnspec.generation import profiles

    profiles.register_profiles()
    if config.getoption("hypothesis_profile", default=None):
        return  # Hypothesis' own plugin loaded the profile the user asked for
    configured = _project_config(config).profile if config.getoption("dnspec", default=None) is not None else None
    profiles.load_profile(
        config.getoption("dnspec_profile")
        or os.environ.get("DNSPEC_PROFILE")
        or configured
        or profiles.default_profile()
    )


def _load(spec: str):
    return load(spec)


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        specs = metafunc.config.getoption("impl") or ["reference"]
        metafunc.parametrize("impl", [_load(s) for s in specs], ids=specs)
    if "regime" in metafunc.fixturenames:
        from dnspec.generation.regimes import NAMES

        chosen = metafunc.config.getoption("regime") or list(NAMES)
        unknown = [r for r in chosen if r not in NAMES]
        if unknown:
            raise pytest.UsageError(f"--regime {unknown[0]}: no such regime; regimes: {', '.join(NAMES)}")
        metafunc.parametrize("regime", chosen)


@pytest.fixture
def options(request):
    from dnspec.checks.suite import RunOptions

    return RunOptions(
        device=request.config.getoption("device"),
        dtype=DTYPES[request.config.getoption("dtype")],
        strict=request.config.getoption("strict_advisories"),
        convention="four_nones" if request.config.getoption("convention") == "rtdetr" else None,
    )


def cpu_and_cuda():
    """``["cpu", "cuda"]`` as pytest params, the cuda one skipping cleanly without a GPU."""
    return [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(
                    not torch.cuda.is_available(),
                    reason="no CUDA device here: run on a GPU machine (pip install a CUDA build of torch)",
                ),
            ],
        ),
    ]


_SWEEPS: dict = {}


def _sweep(impl, options, regime: str):
    """Every contract property of ``impl`` on the cases of ``regime``, once per session
    (keyed by the loaded Hypothesis profile too)."""
    from hypothesis import settings

    from dnspec.checks.suite import GENERATED_KINDS
    from dnspec.running import runner, sweeps

    key = (id(impl), impl.name, options, regime, settings.get_current_profile_name())
    if key not in _SWEEPS:
        checks = [(p, v) for p, v, skip in runner.plan(impl, options) if p.kind in GENERATED_KINDS and not skip]
        base = options.max_examples if options.max_examples is not None else settings.default.max_examples
        _SWEEPS[key] = sweeps.sweep(
            impl, regime, checks, options, max_examples=sweeps.examples_for(regime, base), seed=options.seed
        )[0]
    return _SWEEPS[key]


def check_property(name: str, impl, options, variant=None, regime: str | None = None) -> None:
    """Run the registered property ``name`` on ``impl`` the pytest way: in ``regime`` for
    a property checked on generated cases, on its fixed batch otherwise."""
    from hypothesis import Phase, settings

    from dnspec.checks.suite import BY_NAME, GENERATED_KINDS, label
    from dnspec.generation.regimes import describe_set, regimes_of
    from dnspec.running import shrinks, sweeps

    prop = BY_NAME[name]
    reason = sweeps.skip_reason(prop, impl, options, variant)
    if reason:
        pytest.skip(reason)
    if prop.kind not in GENERATED_KINDS:
        status, message, details, _ = sweeps.fixed_workload(prop, impl, options)
        if status == "advisory":
            pytest.xfail(f"advisory, not enforced for {impl.name} (use --strict-advisories): {details}")
        if status == "fail":
            raise AssertionError(details)
        return
    if regime is None:
        raise TypeError(f"check_property({name!r}): a property checked on generated cases needs a regime")
    cell = _sweep(impl, options, regime)[label(prop, variant)]
    if not cell.findings:
        return
    lines = []
    for signature, finding in cell.findings.items():
        if Phase.shrink in settings.default.phases:
            base = options.max_examples if options.max_examples is not None else settings.default.max_examples
            finding = (
                shrinks.shrink(
                    impl,
                    prop,
                    variant,
                    regime,
                    signature,
                    options,
                    max_examples=sweeps.examples_for(regime, base),
                    seed=options.seed,
                )
                or finding
            )
        where = describe_set(regimes_of(finding.case)) if finding.case is not None else "its fixed workload"
        lines += [
            f"{signature} ({cell.counts[signature]} of {cell.cases} cases; failing call in {where}):",
            f"  {finding.message}",
            f"  example: {finding.case!r}",
        ]
    raise AssertionError("\n".join(lines))


# --- items collected from the installed package (pytest --dnspec) ----------------------------

_CONFIGS: dict = {}


def _project_config(config):
    """``[tool.dnspec]`` of the project pytest runs in (found from the invocation folder);
    a mistake in it is a usage error (one line naming the key and the file)."""
    from dnspec import config as config_module

    folder = str(config.invocation_params.dir)
    if folder not in _CONFIGS:
        try:
            _CONFIGS[folder] = config_module.load(start=folder)
        except config_module.ConfigError as error:
            raise pytest.UsageError(f"dnspec: {error}") from None
    return _CONFIGS[folder]


def _item_options(config, project):
    from dnspec.checks.suite import RunOptions
    from dnspec.commands.verify_options import DEFAULT_TIME_LIMIT_S

    dtype = config.getoption("dtype") if config.getoption("dtype") != "float32" else (project.dtype or "float32")
    device = config.getoption("device") if config.getoption("device") != "cpu" else (project.device or "cpu")
    convention = config.getoption("convention") or project.convention
    limit = project.time_limit if project.time_limit is not None else DEFAULT_TIME_LIMIT_S
    return RunOptions(
        device=device,
        dtype=DTYPES[dtype],
        strict=config.getoption("strict_advisories"),
        convention="four_nones" if convention == "rtdetr" else None,
        time_limit_s=limit or None,
        jobs=1,
        contract=config.getoption("contract") or project.contract,
    )


@pytest.hookimpl(tryfirst=True)  # before -k, -m and xdist look at the items
def pytest_collection_modifyitems(session, config, items):
    chosen = config.getoption("dnspec", default=None)
    if chosen is None:
        return
    project = _project_config(config)
    specs = [s for s in chosen if s] or list(project.specs)
    if not specs:
        where = f"in {project.path}" if project.path else "(no pyproject.toml with [tool.dnspec] here or above)"
        raise pytest.UsageError(
            f"--dnspec: no SPEC: name one (pytest --dnspec=SPEC) or set spec in [tool.dnspec] {where}"
        )
    from dnspec.running.accept import for_spec, same_spec

    against = config.getoption("against") or project.against
    added = []
    for spec in dict.fromkeys(specs):
        name = "dnspec" if len(specs) == 1 else f"dnspec[{spec}]"
        collector = DnspecCollector.from_parent(session, name=name, nodeid=name)
        collector.spec, collector.options = spec, _item_options(config, project)
        collector.accepted = for_spec(project.accept, spec)
        collector.regimes = config.getoption("regime") or project.regimes
        collector.against = against if against and not same_spec(against, spec) else None
        added += [item for item in session.genitems(collector) if isinstance(item, pytest.Item)]
    items[:0] = added


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """With dnspec's items and xdist's default distribution (``--dist load``), each regime's
    items go to one worker (:func:`dnspec.pytest_items.regime_scheduling`), so each regime
    is run once in all, not once per worker; any other ``--dist`` is xdist's own."""
    if config.getoption("dnspec", default=None) is None or config.getvalue("dist") != "load":
        return None
    from dnspec.pytest_items import regime_scheduling

    return regime_scheduling(config, log)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """What pytest shows of a dnspec item (or a test of ``--impl``), cleaned as dnspec's own
    reports are (:func:`dnspec.calling.clean_text.clean`): the captured output sections,
    the failure text, skip and xfail reasons."""
    outcome = yield
    if not isinstance(item, DnspecItem) and "impl" not in getattr(item, "fixturenames", ()):
        return
    from dnspec.calling.clean_text import clean

    report = outcome.get_result()
    report.sections = [(title, clean(content)) for title, content in report.sections]
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        path, line, reason = report.longrepr
        report.longrepr = (path, line, clean(reason))
    elif report.longrepr is not None:
        report.longrepr = clean(str(report.longrepr))
    if getattr(report, "wasxfail", None):
        report.wasxfail = clean(report.wasxfail)
