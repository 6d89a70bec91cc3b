"""dnspec verify on several cores (dnspec.calling.workers): worker processes forked from the run,
one sweep per regime and one fixed batch per statistical property each a task. The
verdict is the same as in one process; what the implementation prints and where it hangs
still reach the report; an implementation that kills its interpreter kills one worker,
and is reported, not the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dnspec.calling.workers import WorkerDied, WorkerError, can_fork, run_tasks
from dnspec.cli import main

FIXTURES = Path(__file__).parent / "cli_fixtures"
QUICK = ["--profile", "ci", "--max-examples", "4"]
FORKS = pytest.mark.skipif(not can_fork("cpu"), reason="worker processes need fork (Linux) and an uninitialized CUDA")


def _report(tmp_path, spec, *argv):
    path = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.json"
    code = main(["verify", spec, *QUICK, *argv, "--report", str(path)])
    return code, json.loads(path.read_text())


def _verdict(data):
    return (
        [(o["label"], o["status"], o["regimes"], o["divergences"]) for o in data["outcomes"]],
        [(d["name"], d["regimes"], d["properties"], d["example"]) for d in data["divergences"]],
        data["compatibility"],
    )


@FORKS
@pytest.mark.parametrize("spec", ["reference", f"{FIXTURES / 'broken.py'}:build"], ids=["reference", "broken"])
def test_two_workers_give_the_verdict_of_one_process(tmp_path, capsys, spec):
    one = _report(tmp_path, spec, "--jobs", "1")
    two = _report(tmp_path, spec, "--jobs", "2")
    capsys.readouterr()
    assert one[0] == two[0]
    assert _verdict(one[1]) == _verdict(two[1])
    assert one[1]["calls"] == two[1]["calls"] > 0


@FORKS
def test_output_printed_in_workers_is_captured_and_counted(tmp_path, capsys):
    code, data = _report(
        tmp_path, f"{FIXTURES / 'prints.py'}:build", "--jobs", "2", "--only", "structure", "label_flip_rate"
    )
    out = capsys.readouterr().out
    assert code == 0 and len(out) < 20_000
    assert data["captured_output"]["chars"] > 1_000_000 and "debug" in data["captured_output"]["head"]


@FORKS
def test_a_hang_in_a_worker_is_stopped_and_noted(tmp_path, capsys):
    code, data = _report(
        tmp_path,
        f"{FIXTURES / 'hangs.py'}:build",
        "--jobs",
        "2",
        "--time-limit",
        "0.5",
        "--only",
        "structure",
        "label_flip_rate",
    )
    capsys.readouterr()
    assert code == 1
    assert [d["name"] for d in data["divergences"]] == ["hangs"]
    assert any(note.startswith("hang: ") for note in data["notes"])


@FORKS
def test_an_implementation_that_kills_its_interpreter_is_one_divergence(tmp_path, capsys):
    code, data = _report(
        tmp_path, f"{FIXTURES / 'crashes.py'}:build_abort", "--jobs", "2", "--only", "structure", "label_flip_rate"
    )
    out = capsys.readouterr().out
    assert code == 1 and "Traceback" not in out
    (died,) = data["divergences"]
    assert died["name"] == "died: exited with status 139" and set(died["properties"]) == {
        "structure",
        "label_flip_rate",
    }
    assert died["example"].startswith("CdnCase(")  # the worker noted the case before the call that killed it


def _square(x):
    return x * x


def _pid(x):
    return os.getpid()


def test_one_job_is_one_worker_and_in_process_is_here():
    finished = []
    assert run_tasks([1, 2, 3], _square, jobs=1, on_done=finished.append) == [1, 4, 9]
    assert finished == [1, 2, 3]
    (worker,) = set(run_tasks([1, 2, 3], _pid, jobs=1))
    assert worker != os.getpid()
    assert run_tasks([1, 2], _pid, jobs=2, in_process=True) == [os.getpid()] * 2


def _dies_on_two(task):
    if task == 2:
        os._exit(0)
    return task * task


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_every_start_method_runs_tasks_and_names_a_death(method):
    """The CUDA path (forkserver or spawn, where a CUDA context exists in dnspec's own
    process) works as the fork path does, on the CPU: results in order, a death named."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    results = run_tasks([1, 2, 3], _dies_on_two, jobs=2, method=method)
    assert results[0] == 1 and results[2] == 9
    assert isinstance(results[1], WorkerDied) and results[1].how == "exited with status 0"


def _process_ids() -> tuple[int, int]:
    return os.getpid(), os.getpgrp()


def _per_case_children(method: str) -> tuple:
    """In a worker: one piece of work in a process of its own, started by ``method``, and
    one that dies there (what a sweep of an implementation that kills its process does)."""
    import functools

    from dnspec.calling import workers

    os.environ["DNSPEC_START_METHOD"] = method  # this worker's own choice (a fork server keeps its start env)
    child = workers.in_child(_process_ids)
    try:
        workers.in_child(functools.partial(os._exit, 3))
        died = None
    except workers.ChildDied as error:
        died = error.how
    return _process_ids(), child, died


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_per_case_process_starts_as_workers_do_and_stays_in_the_workers_group(method):
    """Where workers are not forked (macOS, Windows, CUDA) a per-case process is not forked
    either: it is started by the same method, its work pickled; it runs in a process of its
    own, in the worker's process group (the watchdog's kill reaches it), and its death is
    named."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    ((worker, group), (child, child_group), died) = run_tasks([method], _per_case_children, jobs=1, method=method)[0]
    assert child not in (worker, os.getpid())
    assert child_group == group == worker
    assert died == "exited with status 3"


def _hypothesis_in_a_worker(_task) -> tuple:
    """In a worker, before and after its first Hypothesis test case: whether what it started
    with is frozen, whether Hypothesis' own PRNG was already there (so the first case does
    not register it with a full collection), and the warnings that case raised."""
    import gc
    import warnings

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.core import threadlocal

    had_prng = threadlocal._hypothesis_global_random is not None

    @settings(max_examples=2, database=None)
    @given(st.integers())
    def case(value):
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        case()
    return gc.get_freeze_count() > 0, had_prng, [str(w.message) for w in caught]


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_worker_starts_with_hypothesis_prepared_and_its_start_frozen(method):
    """Hypothesis registers its own PRNG on a thread's first test case with a full garbage
    collection (0.1 s beside torch), once per worker: done before the workers are forked
    (or as a worker that was not forked starts), then what the worker started with is frozen
    (``gc.freeze``), so its first case costs no collection and warns of nothing."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    frozen, had_prng, warned = run_tasks([0], _hypothesis_in_a_worker, jobs=1, method=method)[0]
    assert frozen and had_prng and warned == [], (frozen, had_prng, warned)


def test_a_task_that_does_not_pickle_is_a_clear_error_on_spawn():
    with pytest.raises(WorkerError, match="do not pickle"):
        run_tasks([1, 2], lambda task: task, jobs=1, method="spawn")


# --- every start method, every route (issue 26 §1) --------------------------------------------


def test_the_start_method_variable_is_validated_before_a_run(monkeypatch, capsys):
    monkeypatch.setenv("DNSPEC_START_METHOD", "threads")
    assert main(["verify", "reference", *QUICK, "--only", "structure"]) == 2
    err = capsys.readouterr().err
    assert "DNSPEC_START_METHOD='threads'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_the_start_method_variable_chooses_the_method(monkeypatch, method):
    from dnspec.calling import start_methods

    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    monkeypatch.setenv("DNSPEC_START_METHOD", method)
    assert start_methods.start_method() == method


def _round_trip(value):
    import pickle

    from dnspec.calling import start_methods

    return pickle.loads(start_methods.dumps(value))


def test_implementations_and_properties_travel_to_a_worker_that_is_not_forked():
    """A closure defined in a module (the self-test's variants), a file loaded under a
    private module name, a captured implementation and a registered property all pickle,
    and come back as the same thing (the worker re-loads them); a lambda is a clear error."""
    from selftest.stopping_variants import BROKEN, STOPPING

    from dnspec.calling import start_methods
    from dnspec.calling.output_capture import BoundedOutput, capturing_implementation
    from dnspec.checks.suite import BY_NAME
    from dnspec.implementations.specs import Implementation, load_implementation
    from dnspec.running import sweeps  # registers properties as travelling by name

    assert sweeps.property_named("structure") is BY_NAME["structure"]
    assert _round_trip(BY_NAME["structure"]) is BY_NAME["structure"]
    assert _round_trip(STOPPING["segfault"]) is STOPPING["segfault"]
    assert _round_trip(BROKEN["reseeds"]) == BROKEN["reseeds"]
    from_file = load_implementation(f"{FIXTURES / 'broken.py'}:build")
    assert from_file.fn.__module__.startswith("_dnspec_tree_") or from_file.fn.__module__ != "broken"
    again = _round_trip(from_file)
    assert again.name == from_file.name and again.fn is from_file.fn  # re-loaded by its SPEC
    buffer = BoundedOutput()
    captured = _round_trip((capturing_implementation(from_file, buffer), buffer))
    assert captured[0].fn.buffer is captured[1]  # one buffer, as in the run
    with pytest.raises(start_methods.PicklingTrouble, match="cannot be sent"):
        start_methods.dumps(Implementation("lambda", lambda *a: None))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_verify_gives_the_fork_verdict_with_workers_not_forked(tmp_path, capsys, monkeypatch, method):
    """The macOS/Windows/CUDA route: every executor pickles, the verdict is the fork one
    (the reference conforms, a broken builder's divergences are the same)."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    few = ["--only", "structure", "attention_mask", "label_flip_rate", "--regime", "common", "batch_of_one"]
    spec = f"{FIXTURES / 'broken.py'}:build"
    forked = _report(tmp_path, spec, *few)
    monkeypatch.setenv("DNSPEC_START_METHOD", method)
    assert _report(tmp_path, "reference", *few)[0] == 0
    other = _report(tmp_path, spec, *few)
    capsys.readouterr()
    assert other[0] == forked[0] == 1
    assert _verdict(other[1]) == _verdict(forked[1])


def test_a_spent_budget_stops_the_run_and_says_what_was_not_judged(tmp_path, capsys):
    code, data = _report(tmp_path, "reference", "--budget", "1", "--jobs", "1")
    out = capsys.readouterr().out
    assert code == 1  # an incomplete verdict is never a pass
    (note,) = [n for n in data["notes"] if n.startswith("budget: ")]
    assert "not judged: " in note and "regime " in note
    assert any(o["message"].startswith("not judged") for o in data["outcomes"])
    assert "NOT fully judged" in out


def test_the_budget_is_validated_where_parsed(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["verify", "reference", "--budget", "soon"])
    assert exited.value.code == 2 and "--budget" in capsys.readouterr().err
