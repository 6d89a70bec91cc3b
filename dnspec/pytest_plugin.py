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

Tests take the fixtures ``impl`` (parametrized over --impl via pytest_generate_tests,
as kornia does) and ``options`` (a :class:`dnspec.suite.RunOptions`), and call
:func:`check_property`, which maps a skipped property to pytest.skip and an advisory
that is not enforced to pytest.xfail (reported, never failing).
"""

from __future__ import annotations

import os

import pytest
import torch

_IMPLEMENTATIONS: dict[str, object] = {}
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pytest_addoption(parser):
    group = parser.getgroup("dnspec", "dnspec: CDN builder properties")
    group.addoption("--impl", action="append", default=None, metavar="SPEC",
                    help="implementation under test: built-in name, package.module:callable or path/file.py:callable (repeatable; default: reference)")
    group.addoption("--strict-advisories", action="store_true", default=False,
                    help="treat violated upstream advisories as failures")
    group.addoption("--device", default="cpu", help="device the generated cases live on (default: cpu)")
    group.addoption("--dtype", default="float32", choices=sorted(DTYPES),
                    help="dtype of the generated boxes and class embedding (default: float32)")
    group.addoption("--dnspec-profile", default=None, help="Hypothesis profile: ci, dev or thorough")


def pytest_configure(config):
    from dnspec import profiles

    profiles.register_profiles()
    if config.getoption("hypothesis_profile", default=None):
        return  # Hypothesis' own plugin loaded the profile the user asked for
    profiles.load_profile(config.getoption("dnspec_profile") or os.environ.get("DNSPEC_PROFILE") or profiles.default_profile())


def _load(spec: str):
    from dnspec.specs import SpecError, load_implementation

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


@pytest.fixture
def options(request):
    from dnspec.suite import RunOptions

    return RunOptions(
        device=request.config.getoption("device"),
        dtype=DTYPES[request.config.getoption("dtype")],
        strict=request.config.getoption("strict_advisories"),
    )


def cpu_and_cuda():
    """``["cpu", "cuda"]`` as pytest params, the cuda one skipping cleanly without a GPU."""
    return [
        "cpu",
        pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: run on a GPU machine (pip install a CUDA build of torch)")]),
    ]


def check_property(name: str, impl, options, variant=None) -> None:
    """Run the registered property ``name`` on ``impl`` the pytest way."""
    from dnspec.suite import BY_NAME, AdvisoryViolated, PropertySkipped, run_property

    try:
        run_property(BY_NAME[name], impl, options, variant)
    except PropertySkipped as skipped:
        pytest.skip(str(skipped))
    except AdvisoryViolated as advisory:
        pytest.xfail(f"advisory, not enforced for {impl.name} (use --strict-advisories): {advisory}")
