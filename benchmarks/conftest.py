"""The pytest-benchmark suite: ``pytest benchmarks`` (the default ``pytest`` run, whose
testpaths is ``properties``, does not collect it).

Tests are parametrized over implementation x batch size x max boxes x num_denoising x
device and grouped by workload, so pytest-benchmark's table compares implementations on
the same call. Options (named ``--bench-*`` because dnspec's pytest plugin, loaded in
every pytest run where dnspec is installed, already owns ``--impl`` and ``--device`` for
the property suite):

  --bench-impl SPEC          repeatable; default: the reference and every installed
                             built-in (fast, fast-fixed, transformers-*, ...). Without it,
                             the plugin's --impl is honoured when given.
  --bench-batch-sizes LIST   comma-separated (default 1,4,16,64,256)
  --bench-max-boxes LIST     comma-separated (default 20)
  --bench-num-denoising LIST comma-separated (default 100)
  --bench-device DEV         repeatable (default cpu); cuda skips cleanly without a GPU
  --bench-threads N          torch intra-op threads (default 1: see dnspec.benchmarks.timing)
  --bench-rounds N           timed calls per test (default 20; warm-up calls are extra)

pytest-benchmark's clock is wall time (``--benchmark-timer``; ``time.thread_time`` gives
the calling thread's CPU time, which a shared machine disturbs far less, with
--bench-threads 1 on cpu). CUDA calls are synchronised inside the timed function.
"""

from __future__ import annotations

import pytest

from dnspec.benchmarks import timing as bench_timing
from dnspec.benchmarks import workloads as bench_workloads


def pytest_addoption(parser):
    group = parser.getgroup("dnspec-bench", "dnspec benchmarks (pytest benchmarks)")
    group.addoption(
        "--bench-impl",
        action="append",
        default=None,
        metavar="SPEC",
        help="implementation to benchmark (repeatable; default: reference and every installed built-in)",
    )
    group.addoption(
        "--bench-batch-sizes",
        default=",".join(map(str, bench_workloads.DEFAULT_BATCH_SIZES)),
        metavar="LIST",
        help="comma-separated batch sizes (default %(default)s)",
    )
    group.addoption(
        "--bench-max-boxes",
        default=str(bench_workloads.DEFAULT_MAX_BOXES),
        metavar="LIST",
        help="comma-separated max boxes per image (default %(default)s)",
    )
    group.addoption(
        "--bench-num-denoising",
        default=str(bench_workloads.DEFAULT_NUM_DENOISING),
        metavar="LIST",
        help="comma-separated num_denoising values (default %(default)s)",
    )
    group.addoption(
        "--bench-device", action="append", default=None, metavar="DEVICE", help="device (repeatable; default cpu)"
    )
    group.addoption("--bench-threads", type=int, default=1, metavar="N", help="torch intra-op threads (default 1)")
    group.addoption("--bench-rounds", type=int, default=20, metavar="N", help="timed calls per test (default 20)")


def _ints(config, name: str) -> list[int]:
    text = config.getoption(name)
    try:
        values = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise pytest.UsageError(
            f"--{name.replace('_', '-')} {text!r}: expected comma-separated whole numbers"
        ) from None
    if not values or min(values) < 1:
        raise pytest.UsageError(f"--{name.replace('_', '-')} {text!r}: expected numbers >= 1")
    return values


def bench_specs(config) -> list[str]:
    specs = config.getoption("bench_impl")
    if not specs:
        try:
            specs = config.getoption("impl")  # dnspec's plugin option, when given
        except ValueError:
            specs = None
    if not specs:
        from dnspec.implementations.specs import installed_builtin_names

        specs = ["reference"] + [n for n in installed_builtin_names() if n != "reference"]
    return list(dict.fromkeys(specs))


_LOADED: dict = {}


def _load(spec: str):
    from dnspec.implementations.specs import SpecError, load_implementation

    if spec not in _LOADED:
        try:
            _LOADED[spec] = load_implementation(spec)
        except SpecError as error:
            raise pytest.UsageError(str(error)) from error
    return _LOADED[spec]


def _device_param(device: str):
    import torch

    kind = torch.device(device).type
    marks = []
    if kind == "cuda":
        marks = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")]
    elif kind == "mps":
        marks = [
            pytest.mark.skipif(
                not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()),
                reason="MPS is not available here",
            )
        ]
    return pytest.param(device, marks=marks, id=device)


def pytest_generate_tests(metafunc):
    config = metafunc.config
    names = metafunc.fixturenames
    if "bench_spec" in names:
        metafunc.parametrize("bench_spec", bench_specs(config))
    if "batch_size" in names:
        metafunc.parametrize("batch_size", _ints(config, "bench_batch_sizes"), ids=lambda b: f"bs{b}")
    if "max_boxes" in names:
        metafunc.parametrize("max_boxes", _ints(config, "bench_max_boxes"), ids=lambda m: f"boxes{m}")
    if "num_denoising" in names:
        metafunc.parametrize("num_denoising", _ints(config, "bench_num_denoising"), ids=lambda n: f"dn{n}")
    if "bench_device" in names:
        metafunc.parametrize("bench_device", [_device_param(d) for d in (config.getoption("bench_device") or ["cpu"])])


@pytest.fixture
def bench_impl(bench_spec):
    return _load(bench_spec)


@pytest.fixture
def bench_rounds(request) -> int:
    return max(1, request.config.getoption("bench_rounds"))


@pytest.fixture(autouse=True, scope="session")
def _bench_settings(request):
    """One torch thread (by default) and glibc malloc's steady thresholds for the session."""
    bench_timing.steady_allocator()
    with bench_timing.torch_threads(request.config.getoption("bench_threads")):
        yield
