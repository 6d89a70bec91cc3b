"""Re-run the field survey: `dnspec verify` on public forks' copies of the CDN builder, each
file verbatim inside its own extracted tree, and write the table of docs/field-survey.md.

    python ci/field_survey.py --trees /tmp/survey                 run every repository, write the page
    python ci/field_survey.py --trees /tmp/survey --only NAME...  re-run these, take the rest from the cache
    python ci/field_survey.py --render-only                       rebuild the table from the cache

The manifest (docs/field-survey.toml) names, per repository, the folder under --trees its
tree was extracted to, the commit, the file, the callable, the working folder (relative to
the tree, as a user runs from their repository root) and the outcome a careful reviewer
would give, in two settings:

- ``as_found``: the file as it is, with this environment's packages (torch, no torchvision);
- ``stubbed``: the same, with the third-party modules the manifest lists (``stub``) stood in
  for by small modules written here (:data:`SHIMS`, put first on PYTHONPATH), which is how a
  user who has them installed sees the file, as far as the builder is concerned.

Nothing is fetched: the trees are extracted beforehand (``git archive COMMIT | tar -x``; the
page lists them). Each run has a time limit (``--timeout``, a timeout is an outcome, not a
crash of this script), the runs go two at a time (``--jobs``), and each result is kept as
JSON under ``--cache`` so that a partial re-run (``--only``) keeps the others. A run leaves
its tree as it found it: whatever it created in the working folder is recorded in the result
(``left_behind``, a finding about dnspec) and then removed.

A result is right when its outcome (conforms, diverges or exit 2) is the expected one and,
where the manifest names them, its divergence ids (before the ``@``, so a regime set that
moves does not count) are exactly the expected ones, or its error line contains the
expected words.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10: tomli, a dependency of dnspec there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "docs" / "field-survey.toml"
PAGE = ROOT / "docs" / "field-survey.md"
CACHE = Path("/tmp/dnspec-field-survey")
MODES = ("as_found", "stubbed")
OUTCOMES = ("conforms", "diverges", "exit 2", "timeout")
BLOCK = re.compile(r"(<!-- field-survey: [^\n]*-->\n)(.*?)(<!-- /field-survey -->)", re.S)

# Stand-ins for third-party modules the forks import beside the builder (never used by it):
# module path -> source. Written for this survey; each does what its name says, no more.
SHIMS = {
    "torchvision": {
        "torchvision/__init__.py": (
            '"""Stand-in for the field survey: only what the forks\' box_ops and misc import."""\n'
            '__version__ = "0.29.0+field-survey-stand-in"\n'
        ),
        "torchvision/ops/__init__.py": "from .boxes import box_area\n",
        "torchvision/ops/boxes.py": (
            "def box_area(boxes):\n"
            '    """Area of [N, 4] boxes given as (x1, y1, x2, y2)."""\n'
            "    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])\n"
        ),
    },
    "loguru": {
        "loguru/__init__.py": (
            '"""Stand-in for the field survey: `logger`, a standard library logger."""\n'
            "import logging\n\n"
            'logger = logging.getLogger("loguru")\n'
        ),
    },
}


@dataclasses.dataclass(frozen=True)
class Expectation:
    """What a careful reviewer expects in one setting: an outcome, optionally the exact set of
    divergence ids (their part before ``@``), words the exit-2 line must contain, or words it
    must not."""

    outcome: str
    ids: tuple[str, ...] = ()
    error: str = ""
    why: str = ""
    stub: tuple[str, ...] = ()
    not_error: str = ""  # words the exit-2 line must not contain ("pip install" for a folder of the tree)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One repository of the manifest."""

    name: str
    repository: str
    commit: str
    path: str
    callable: str
    cwd: str
    differs: str
    patterns: tuple[str, ...]
    expect: dict  # mode -> Expectation (only the modes the manifest gives)
    gap: str = ""  # why dnspec's verdict is not yet the right one, when it is not


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One `dnspec verify` run as this script saw it."""

    name: str
    mode: str
    exit_code: int
    timed_out: bool
    seconds: float
    outcome: str
    compatibility_level: str = ""
    divergence_ids: tuple[str, ...] = ()
    error: str = ""
    header: str = ""
    left_behind: tuple[str, ...] = ()
    dnspec_commit: str = ""


class ManifestError(ValueError):
    pass


def _expectation(raw: dict, where: str) -> Expectation:
    outcome = raw.get("expect")
    if outcome not in OUTCOMES:
        raise ManifestError(f"{where}.expect: {outcome!r} is not one of {', '.join(OUTCOMES)}")
    stub = tuple(raw.get("stub", ()))
    for module in stub:
        if module not in SHIMS:
            raise ManifestError(f"{where}.stub: no stand-in for {module!r} (known: {', '.join(SHIMS)})")
    return Expectation(
        outcome, tuple(raw.get("ids", ())), raw.get("error", ""), raw.get("why", ""), stub, raw.get("not_error", "")
    )


def load_manifest(path: Path) -> list[Entry]:
    """The manifest's repositories, in its order; a missing or bad field is a ManifestError
    naming it."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries, seen = [], set()
    for i, raw in enumerate(data.get("repo", [])):
        where = f"repo[{i}]"
        for key in ("name", "repository", "commit", "path"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ManifestError(f"{where}.{key}: missing (a non-empty string)")
        if raw["name"] in seen:
            raise ManifestError(f"{where}.name: {raw['name']!r} appears twice")
        seen.add(raw["name"])
        expect = {mode: _expectation(raw[mode], f"{where}.{mode}") for mode in MODES if mode in raw}
        if "as_found" not in expect:
            raise ManifestError(f"{where}.as_found: missing (the expected outcome of the file as found)")
        entries.append(
            Entry(
                name=raw["name"],
                repository=raw["repository"],
                commit=raw["commit"],
                path=raw["path"],
                callable=raw.get("callable", "get_contrastive_denoising_training_group"),
                cwd=raw.get("cwd", "."),
                differs=raw.get("differs", ""),
                patterns=tuple(raw.get("patterns", ())),
                expect=expect,
                gap=raw.get("gap", ""),
            )
        )
    return entries


def dnspec_commit() -> str:
    """The last commit that changed dnspec's code (dnspec/, pyproject.toml) in this checkout,
    with "+changes" when those files differ from it: the code the table judges, whatever
    commits touched only docs or ci/ since (install the checkout before a run)."""
    paths = ["dnspec", "pyproject.toml"]
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--abbrev=10", "--", *paths],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", *paths]).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


def write_shims(cache: Path, modules: tuple[str, ...]) -> Path:
    """A folder holding the stand-ins for `modules`, to put first on PYTHONPATH."""
    folder = cache / ("shims-" + "-".join(sorted(modules)))
    for module in modules:
        for rel, source in SHIMS[module].items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, encoding="utf-8")
    return folder


def _compared_ids(ids, expected) -> set[str]:
    """The ids as the manifest names them: whole where it gives a whole id (with ``@``), else
    their part before the ``@``."""
    return {i if i in expected else i.split("@", 1)[0] for i in ids}


def classify(exit_code: int, timed_out: bool) -> str:
    if timed_out:
        return "timeout"
    return {0: "conforms", 1: "diverges"}.get(exit_code, "exit 2" if exit_code == 2 else f"exit {exit_code}")


def run_one(entry: Entry, mode: str, trees: Path, cache: Path, dnspec: list[str], timeout: float) -> RunResult:
    """Run `dnspec verify` once on the entry's file in its tree, in `mode`; never raises for
    what dnspec or the fork does (a timeout, a crash, no report are outcomes)."""
    tree = trees / entry.name
    cwd = (tree / entry.cwd).resolve()
    commit = dnspec_commit()
    if not (tree / entry.path).is_file():
        return RunResult(entry.name, mode, -1, False, 0.0, "missing", error=f"no file {tree / entry.path}")
    report = cache / f"{entry.name}.{mode}.report.json"
    report.unlink(missing_ok=True)
    spec = f"{os.path.relpath(tree / entry.path, cwd)}:{entry.callable}"
    command = [*dnspec, "verify", spec, "--profile", "ci", "--jobs", "1", "--report", str(report)]
    env = dict(os.environ)
    stub = entry.expect[mode].stub if mode in entry.expect else ()
    if stub:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(write_shims(cache, stub)), env.get("PYTHONPATH", "")]))
    if not cwd.is_dir():
        return RunResult(entry.name, mode, -1, False, 0.0, "missing", error=f"no folder {cwd}")
    before = set(os.listdir(cwd))
    start = time.monotonic()
    # its own session, so that a timeout ends dnspec's worker processes too, not only dnspec
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        exit_code, timed_out = proc.returncode, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        exit_code, timed_out = -9, True
    seconds = time.monotonic() - start
    left = tuple(sorted(set(os.listdir(cwd)) - before))
    for name in left:  # leave the tree as it was found; the finding is kept in the result
        target = cwd / name
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    lines = [line for line in out.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("dnspec verify ")), "")
    data = {}
    if report.is_file():
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
    error = data.get("error", "") or ("" if exit_code in (0, 1) else (lines[-1] if lines else ""))
    return RunResult(
        name=entry.name,
        mode=mode,
        exit_code=exit_code,
        timed_out=timed_out,
        seconds=round(seconds, 1),
        outcome=classify(exit_code, timed_out),
        compatibility_level=data.get("compatibility_level", ""),
        divergence_ids=tuple(d.get("id") or d.get("name", "") for d in data.get("divergences", [])),
        error=error,
        header=header,
        left_behind=left,
        dnspec_commit=commit,
    )


def run_modes(entry: Entry, modes: list[str], options: tuple) -> list[tuple[Entry, RunResult]]:
    """The entry's runs, one mode after the other; a tree or command that cannot be used is an
    outcome ("error"), not a crash of the survey."""
    done = []
    for mode in modes:
        try:
            result = run_one(entry, mode, *options)
        except OSError as exc:
            result = RunResult(entry.name, mode, -1, False, 0.0, "error", error=f"{type(exc).__name__}: {exc}")
        done.append((entry, result))
    return done


def judge(result: RunResult | None, expected: Expectation | None) -> tuple[bool | None, str]:
    """(right, why not): None when there is nothing to judge (no expectation or no run)."""
    if expected is None or result is None:
        return None, ""
    if result.outcome != expected.outcome:
        return False, f"expected {expected.outcome}, got {result.outcome}"
    if expected.ids and _compared_ids(result.divergence_ids, expected.ids) != set(expected.ids):
        return False, f"expected divergences {', '.join(sorted(set(expected.ids)))}"
    if expected.error and expected.error not in result.error:
        return False, f"expected the line to say {expected.error!r}"
    if expected.not_error and expected.not_error in result.error:
        return False, f"the line says {expected.not_error!r}"
    return True, ""


def verdict_text(result: RunResult | None) -> str:
    if result is None:
        return "not run"
    if result.outcome == "conforms":
        text = f"exit 0, conforms ({result.compatibility_level})" if result.compatibility_level else "exit 0"
    elif result.outcome == "diverges":
        text = f"exit 1: {', '.join(f'`{i}`' for i in result.divergence_ids)}"
    elif result.outcome == "timeout":
        text = f"timeout after {result.seconds:.0f} s"
    else:
        text = f"{result.outcome}: {_error_gist(result.error)}"
    if result.left_behind:
        text += f" (left {', '.join(result.left_behind)} in the tree)"
    return text


def _error_gist(error: str, limit: int = 200) -> str:
    """The exit-2 line without its "cannot load SPEC '...': " preamble, and its end (where the
    `pip install` advice is) when it is long."""
    error = " ".join(re.sub(r"^.*?cannot load SPEC '[^']*': ", "", error).split())
    return error if len(error) <= limit else "…" + error[-(limit - 1) :]


def _cell(text: str, limit: int = 400) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mark(right: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[right]


def render_table(entries: list[Entry], results: dict) -> tuple[str, dict]:
    """The markdown table (one row per repository) and the tally {mode: (right, judged)}."""
    head = (
        "| # | Repository | Commit | Path | What differs from RT-DETR | Patterns | dnspec as found | right? "
        "| with stand-ins | right? | Why not |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows, tally = [], {mode: [0, 0] for mode in MODES}
    for n, entry in enumerate(entries, 1):
        cells, notes = [], []
        for mode in MODES:
            result = results.get((entry.name, mode))
            right, why = judge(result, entry.expect.get(mode))
            if right is not None:
                tally[mode][1] += 1
                tally[mode][0] += right
            if right is False:
                notes.append(f"{mode.replace('_', ' ')}: {why}")
            if mode == "stubbed" and mode not in entry.expect:
                cells += ["(not needed)", "–"]
            else:
                cells += [_cell(verdict_text(result)), _mark(right)]
        if notes and entry.gap:
            notes.append(entry.gap)
        rows.append(
            f"| {n} | [{entry.repository}](https://github.com/{entry.repository}) | `{entry.commit[:10]}` "
            f"| `{entry.path}` | {_cell(entry.differs)} | {_cell(', '.join(entry.patterns))} | "
            + " | ".join(cells)
            + f" | {_cell('; '.join(notes)) or '–'} |"
        )
    return head + "\n".join(rows) + "\n", {mode: tuple(v) for mode, v in tally.items()}


def render_block(entries: list[Entry], results: dict, command: str) -> str:
    table, tally = render_table(entries, results)
    commits = sorted({r.dnspec_commit for r in results.values() if r.dnspec_commit}) or ["(no run)"]
    lines = [
        f"Produced by `{command}` on dnspec commit {', '.join(commits)}.",
        "",
        f"Right as found: **{tally['as_found'][0]} of {tally['as_found'][1]}**; "
        f"with the stand-ins: **{tally['stubbed'][0]} of {tally['stubbed'][1]}**.",
        "",
        table,
    ]
    return "\n".join(lines)


def write_page(page: Path, block: str, command: str) -> None:
    """Replace the content of the page's field-survey block (the rest of the page is prose)."""
    text = page.read_text(encoding="utf-8")
    match = BLOCK.search(text)
    if match is None:
        raise ManifestError(f"{page}: no <!-- field-survey: ... --> block to write the table into")
    opening = f"<!-- field-survey: recorded (produced by `{command}`; CI cannot fetch the forks) -->\n"
    page.write_text(text[: match.start()] + opening + block + "\n" + match.group(3) + text[match.end() :], "utf-8")


def load_cached(cache: Path, entries: list[Entry]) -> dict:
    results = {}
    fields = {f.name for f in dataclasses.fields(RunResult)}
    for entry in entries:
        for mode in MODES:
            path = cache / f"{entry.name}.{mode}.json"
            if not path.is_file():
                continue
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in fields}
                results[(entry.name, mode)] = RunResult(**raw)
            except (OSError, ValueError, TypeError):
                continue
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ci/field_survey.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=Path, help="the folder holding each repository's extracted tree, by name")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--page", type=Path, default=PAGE, help="the page whose field-survey block gets the table")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where each run's result is kept as JSON")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="re-run only these repositories")
    parser.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run (default 600)")
    parser.add_argument(
        "--dnspec",
        default=str(Path(sys.executable).with_name("dnspec")),
        help="the command that runs dnspec (default: this Python's `dnspec` script, as a user runs it; "
        "not `python -m dnspec`, which puts the working folder on sys.path)",
    )
    parser.add_argument("--render-only", action="store_true", help="rebuild the table from the cache, run nothing")
    args = parser.parse_args(argv)
    try:
        entries = load_manifest(args.manifest)
    except (OSError, ManifestError, tomllib.TOMLDecodeError) as exc:
        print(f"ci/field_survey.py: {args.manifest}: {exc}", file=sys.stderr)
        return 2
    names = {e.name for e in entries}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        print(f"ci/field_survey.py: --only: not in the manifest: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.jobs < 1 or args.timeout <= 0:
        print("ci/field_survey.py: --jobs and --timeout must be positive", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        if args.trees is None or not args.trees.is_dir():
            print(f"ci/field_survey.py: --trees: {args.trees} is not a folder (see the page)", file=sys.stderr)
            return 2
        todo = [e for e in entries if not args.only or e.name in args.only]
        options = (args.trees.resolve(), args.cache, args.dnspec.split(), args.timeout)
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            # one task per repository, its modes one after the other: two runs never share a tree,
            # so what a run leaves behind is its own
            futures = [pool.submit(run_modes, e, [m for m in args.mode if m in e.expect], options) for e in todo]
            for future in concurrent.futures.as_completed(futures):
                for entry, result in future.result():
                    (args.cache / f"{entry.name}.{result.mode}.json").write_text(
                        json.dumps(dataclasses.asdict(result), indent=1), encoding="utf-8"
                    )
                    right, why = judge(result, entry.expect.get(result.mode))
                    print(
                        f"{entry.name} [{result.mode}] {result.seconds:.0f} s: {verdict_text(result)}"
                        f" -> {'right' if right else 'WRONG: ' + why}",
                        flush=True,
                    )
    results = load_cached(args.cache, entries)
    command = "python ci/field_survey.py --trees /tmp/survey"
    block = render_block(entries, results, command)
    try:
        write_page(args.page, block, command)
    except (OSError, ManifestError) as exc:
        print(f"ci/field_survey.py: {exc}", file=sys.stderr)
        return 2
    _, tally = render_table(entries, results)
    print(
        f"right as found: {tally['as_found'][0]} of {tally['as_found'][1]}; "
        f"with stand-ins: {tally['stubbed'][0]} of {tally['stubbed'][1]}; table written to {args.page}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
