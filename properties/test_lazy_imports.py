"""Each command imports what it needs: ``dnspec verify`` never imports the benchmark
machinery or a plotting module, and ``dnspec verify --help`` not even torch (each of these
runs in a fresh interpreter: the test process has imported everything already)."""

import json
import subprocess
import sys

import pytest

NEVER_FOR_VERIFY = (
    "dnspec.benchmarks.workloads",
    "dnspec.benchmarks.timing",
    "dnspec.benchmarks.memory",
    "dnspec.benchmarks.results",
    "dnspec.benchmarks.report",
    "dnspec.reports.pictures",
    "matplotlib",
    "transformers",
)


def _modules_after(code: str) -> set:
    probe = code + "\nimport json, sys\nprint('MODULES=' + json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    line = next((line for line in result.stdout.splitlines() if line.startswith("MODULES=")), None)
    assert line is not None, result.stdout[-2000:] + result.stderr[-2000:]
    return set(json.loads(line[len("MODULES=") :]))


def _loaded(modules: set, name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_verify_imports_no_benchmark_or_plotting_module():
    modules = _modules_after(
        "from dnspec.cli import main\n"
        "code = main(['verify', 'reference', '--only', 'structure', '--regime', 'common', '--max-examples', '2'])\n"
        "assert code == 0, code"
    )
    assert _loaded(modules, "dnspec.running.runner")  # the probe did run a verify
    assert not [name for name in NEVER_FOR_VERIFY if _loaded(modules, name)]


@pytest.mark.parametrize("command", ["verify", "matrix", "demo"])
def test_help_of_a_command_imports_no_torch(command):
    modules = _modules_after(
        f"from dnspec.cli import main\ntry:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass"
    )
    assert _loaded(modules, "dnspec.commands." + command)
    assert not _loaded(modules, "torch")
    assert not _loaded(modules, "dnspec.commands.bench") or command == "bench"
