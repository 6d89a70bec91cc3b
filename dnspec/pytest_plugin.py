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

_IMPLEMENTATIONS: dict[str, object] = {}
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
    profiles.load_profile(
        config.getoption("dnspec_profile") or os.environ.get("DNSPEC_PROFILE") or profiles.default_profile()
    )


def _load(spec: str):
    from dnspec.implementations.specs import SpecError, load_implementation

    if spec not in _IMPLEMENTATIONS:
        try:
            _IMPLEMENTATIONS[spec] = load_implementation(spec)
        except SpecError as error:
            raise pytest.UsageError(str(error)) from error
    return _IMPLEMENTATIONS[spec]


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
    from dnspec.running import runner

    key = (id(impl), impl.name, options, regime, settings.get_current_profile_name())
    if key not in _SWEEPS:
        checks = [(p, v) for p, v, skip in runner.plan(impl, options) if p.kind in GENERATED_KINDS and not skip]
        base = options.max_examples if options.max_examples is not None else settings.default.max_examples
        _SWEEPS[key] = runner.sweep(
            impl, regime, checks, options, max_examples=runner.examples_for(regime, base), seed=options.seed
        )[0]
    return _SWEEPS[key]


def check_property(name: str, impl, options, variant=None, regime: str | None = None) -> None:
    """Run the registered property ``name`` on ``impl`` the pytest way: in ``regime`` for
    a property checked on generated cases, on its fixed batch otherwise."""
    from hypothesis import Phase, settings

    from dnspec.checks.suite import BY_NAME, GENERATED_KINDS, label
    from dnspec.generation.regimes import describe_set, regimes_of
    from dnspec.running import runner

    prop = BY_NAME[name]
    reason = runner.skip_reason(prop, impl, options, variant)
    if reason:
        pytest.skip(reason)
    if prop.kind not in GENERATED_KINDS:
        status, message, details, _ = runner.fixed_workload(prop, impl, options)
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
                runner.shrink(
                    impl,
                    prop,
                    variant,
                    regime,
                    signature,
                    options,
                    max_examples=runner.examples_for(regime, base),
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
