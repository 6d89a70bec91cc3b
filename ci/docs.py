"""Keep README.md, CONTRIBUTING.md and docs/*.md true: every output they show is what the
command shown beside it prints, and every relative link between them points somewhere.

    python ci/docs.py              check every marked block and every link (exit 1 on a difference)
    python ci/docs.py --update     rewrite the marked blocks from fresh runs (then review the diff)
    python ci/docs.py --links      check the links only (fast)
    python ci/docs.py --only NAME  check (or update) the named blocks only

A marked block is an HTML comment naming it and saying where its content comes from, the
content, then the closing comment (the convention of docs/ and the README):

    <!-- NAME: produced by the command in its first line -->
    ```
    $ dnspec verify reference --profile ci
    ...the output...
    ```
    <!-- /NAME -->

``produced by the command in its first line``: the fenced block's first line is ``$ COMMAND``;
the command is run in the repository root (``bash -c``, the environment's ``.venv/bin``
first on PATH (``DNSPEC_DOCS_VENV`` names another venv: ci/latest.sh), stdout and stderr together as a terminal shows them) and its output must be
the rest of the block. Volatile parts are normalised on both sides before comparing (see
:data:`VOLATILE`: seconds taken, the repository's absolute path, temporary folders). A line
``...`` in the block stands for any number of output lines (the block shows the head and
the tail of a long output; ``--update`` keeps as many lines on each side).

``produced by: COMMAND`` (the command in the comment itself): the content, not fenced (a
markdown table, say), is the command's output, compared as above.

``copied from FILE``: the content is a copy of FILE (a committed file that a long run
wrote, e.g. a bench table): its paragraphs must be the same number of FILE's paragraphs,
starting at the one that begins with the block's first line.

``recorded``: a copy of a run that cannot be repeated (rows measured on old commits, a
statistical calibration); not checked, and listed as such on every run so that nobody
takes it for checked.

The blocks' commands run in parallel (one per core), so the check costs about its longest
command. The links: every ``[text](target)`` outside code whose target is not a URL must
name an existing file relative to the page, and its ``#anchor`` (if any) a heading of the
target page, spelled as GitHub spells heading anchors.

A block whose output differs only in a package's version (``transformers 5.24.0`` where the
run prints ``5.25.0``, a name the lock pins) is reported as that move in one line, with what
to do: a version the lock moved to means regenerating the block in the lock's commit; any
other means the environment is not the lock's (``bash ci/install.sh``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600

# (pattern, replacement) applied to documented and actual output alike
VOLATILE = [
    (re.compile(r"\bin \d+(?:\.\d+)? s\b"), "in <N> s"),  # "conforms (...) in 6.4 s"
    (re.compile(r"\bin \d+(?:\.\d+)?s\b(?: \(\d+:\d\d:\d\d\))?"), "in <N>s"),  # pytest: "2 passed in 36.75s (0:00:36)"
    (re.compile(re.escape(str(ROOT)) + r"/?"), ""),  # absolute paths inside the clone
    (re.compile(r"/tmp/[\w.\-]+"), "/tmp/<tmp>"),  # temporary folders
    (re.compile(r"[ \t]+$", re.M), ""),  # trailing blanks
]

MARK = re.compile(
    r"<!-- (?P<name>[\w.\-]+): (?P<how>[^\n]*?)-->\n(?P<body>.*?)\n?<!-- /(?P=name) -->",
    re.S,
)
FENCE = re.compile(r"^(?P<fence>```+)[^\n]*\n(?P<inner>.*?)^(?P=fence)[ \t]*$", re.S | re.M)
LINK = re.compile(r"(?<!\\)\[(?:[^\]\n]|\\\])*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def pages(root: Path = ROOT) -> list[Path]:
    found = [root / "README.md", root / "CONTRIBUTING.md", *sorted((root / "docs").glob("*.md"))]
    return [p for p in found if p.is_file()]


@dataclass
class Block:
    page: Path
    name: str
    how: str
    body: str
    start: int  # offsets of the body in the page's text
    end: int

    @property
    def kind(self) -> str:
        if self.how.startswith("produced by the command in its first line"):
            return "produced"
        if self.how.startswith("produced by: "):
            return "table"
        if self.how.startswith("copied from "):
            return "copied"
        if self.how.startswith("recorded"):
            return "recorded"
        return "unknown"

    def copied_file(self) -> Path:
        return ROOT / self.how[len("copied from ") :].split()[0].strip("`")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(page, m["name"], m["how"].strip(), m["body"], m.start("body"), m.start("body") + len(m["body"]))
        for m in MARK.finditer(text)
    ]


def normalise(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text.strip("\n")


def fenced(body: str) -> tuple[str, str, int, int]:
    """(command, documented output, start, end of the fence's inside in body) of a
    produced block; ValueError saying what is missing."""
    m = FENCE.search(body)
    if not m:
        raise ValueError("no fenced block inside the marks")
    inner = m["inner"]
    first, _, rest = inner.partition("\n")
    if not first.startswith("$ "):
        raise ValueError("the fenced block's first line is not '$ COMMAND'")
    return first[2:].strip(), rest.rstrip("\n"), m.start("inner"), m.end("inner")


def run(command: str) -> str:
    env = dict(os.environ)
    venv_bin = ROOT / os.environ.get("DNSPEC_DOCS_VENV", ".venv") / "bin"  # ci/latest.sh: .venv-latest
    if venv_bin.is_dir():
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    for volatile in ("GITHUB_ACTIONS", "FORCE_COLOR", "DNSPEC_PROFILE"):
        env.pop(volatile, None)
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONHASHSEED="0")
    try:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"<ci/docs.py: the command ran past {TIMEOUT_S} s>"
    return done.stdout.rstrip("\n")


def matches(documented: str, actual: str) -> bool:
    """Whether the actual output is the documented one, a line ``...`` standing for any
    number of lines (both normalised)."""
    doc, out = normalise(documented).split("\n"), normalise(actual).split("\n")
    pattern = "\n".join(".*?" if line == "..." else re.escape(line) for line in doc)
    pattern = pattern.replace("\n.*?\n", "(?:\n.*?)?\n")
    return re.fullmatch(pattern, "\n".join(out), re.S) is not None


def elided(documented: str, actual: str) -> str:
    """The actual output shaped like the documented block: as many head and tail lines
    around a ``...`` line as the block had."""
    doc, out = documented.split("\n"), actual.split("\n")
    if "..." not in doc:
        return actual
    cut = doc.index("...")
    head, tail = cut, len(doc) - cut - 1
    if head + tail >= len(out):
        return actual
    return "\n".join(out[:head] + ["..."] + (out[len(out) - tail :] if tail else []))


# --- a difference that is a package's version alone ------------------------------------------

LOCKS = [ROOT / "ci" / "locks" / "test.txt"]  # the lock of the environment the blocks run in (.venv)
# "transformers 5.25.0", "torch==2.13.0+cpu", "dnspec v0.1.0": a name, then a version
PACKAGE_VERSION = re.compile(
    r"(?<![\w.\-])(?P<name>[A-Za-z][A-Za-z0-9_.\-]*?)(?P<sep>==| v?|=v?)(?P<version>\d+(?:\.\d+)+(?:[a-z0-9.+!]*[a-z0-9])?)(?![\w.])"
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    """{canonical package name: version} pinned by the lock files (``name==version``)."""
    pins = {}
    for lock in LOCKS:
        if lock.is_file():
            for m in re.finditer(
                r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;\\]+)", lock.read_text(encoding="utf-8"), re.M
            ):
                pins[_canonical(m[1])] = m[2]
    return pins


def _versions(text: str, known: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for m in PACKAGE_VERSION.finditer(text):
        if _canonical(m["name"]) in known:
            found.setdefault(m["name"], []).append(m["version"])
    return found


def version_moves(documented: str, actual: str) -> str | None:
    """When the block and the output differ only in the versions printed after package
    names (a name the lock pins, or dnspec/python): one line naming each package whose
    version moved, old -> new, and what to do (the lock's version: regenerate the block;
    another: this environment is not the lock's). None when anything else differs too, or
    no package version does."""
    pins = locked_versions()
    known = set(pins) | {"dnspec", "python"}

    def masked(text: str) -> str:
        def mask(m: re.Match) -> str:
            return f"{m['name']}{m['sep']}<version>" if _canonical(m["name"]) in known else m.group(0)

        return PACKAGE_VERSION.sub(mask, normalise(text))

    if not matches(masked(documented), masked(actual)):
        return None
    before, after = _versions(normalise(documented), known), _versions(normalise(actual), known)
    by_lock, elsewhere, unpinned = [], [], []
    for name in sorted(set(before) | set(after), key=_canonical):
        old, new = sorted(set(before.get(name, []))), sorted(set(after.get(name, [])))
        if old == new:
            continue
        moved = f"{name} {', '.join(old) or '(none)'} -> {', '.join(new) or '(none)'}"
        pin = pins.get(_canonical(name))
        if pin is None:
            unpinned.append(moved)
        elif new == [pin]:
            by_lock.append(moved)
        else:
            elsewhere.append(f"{moved} (the lock pins {pin})")
    moves = []
    if by_lock:
        moves.append(
            ", ".join(by_lock) + " (the lock's version now: regenerate the block, python ci/docs.py --update, "
            "in the lock's commit)"
        )
    if elsewhere:
        moves.append(
            ", ".join(elsewhere) + " (this environment is not the lock's: bash ci/install.sh installs the lock, "
            "bash ci/lock.sh moves it)"
        )
    moves.extend(unpinned)
    return "differs: " + "; ".join(moves) if moves else None


def paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text.strip("\n")) if p.strip()]


def copied_expected(block: Block) -> str:
    source = block.copied_file()
    if not source.is_file():
        raise ValueError(f"{_rel(source)} does not exist")
    wanted = paragraphs(block.body)
    have = paragraphs(source.read_text(encoding="utf-8"))
    first = wanted[0].split("\n")[0] if wanted else ""
    starts = [i for i, p in enumerate(have) if p.split("\n")[0] == first]
    if not starts:
        raise ValueError(f"{_rel(source)} has no paragraph starting with the block's first line {first[:80]!r}")
    return "\n\n".join(have[starts[0] : starts[0] + len(wanted)])


@dataclass
class Verdict:
    block: Block
    ok: bool
    message: str = ""
    new_body: str | None = None  # what --update writes


def judge(block: Block) -> Verdict:
    try:
        if block.kind == "produced":
            command, documented, start, end = fenced(block.body)
            actual = run(command)
            new_inner = f"$ {command}\n{elided(documented, actual)}\n"
            new_body = block.body[:start] + new_inner + block.body[end:]
            if matches(documented, actual):
                return Verdict(block, True)
            moved = version_moves(documented, actual)
            if moved:
                return Verdict(block, False, moved, new_body)
            diff = difflib.unified_diff(
                normalise(documented).split("\n"),
                normalise(actual).split("\n"),
                "documented",
                "actual",
                lineterm="",
                n=1,
            )
            return Verdict(block, False, "\n".join(list(diff)[:60]), new_body)
        if block.kind == "table":
            command = block.how[len("produced by: ") :].strip()
            actual = run(command)
            if matches(block.body, actual):
                return Verdict(block, True)
            moved = version_moves(block.body, actual)
            if moved:
                return Verdict(block, False, moved, actual)
            diff = difflib.unified_diff(
                normalise(block.body).split("\n"),
                normalise(actual).split("\n"),
                "documented",
                "actual",
                lineterm="",
                n=1,
            )
            return Verdict(block, False, "\n".join(list(diff)[:60]), actual)
        if block.kind == "copied":
            expected = copied_expected(block)
            if normalise(block.body) == normalise(expected):
                return Verdict(block, True)
            diff = difflib.unified_diff(
                normalise(block.body).split("\n"),
                normalise(expected).split("\n"),
                "documented",
                "file",
                lineterm="",
                n=1,
            )
            return Verdict(block, False, "\n".join(list(diff)[:60]), expected)
        if block.kind == "recorded":
            return Verdict(block, True, "recorded, not checked: " + block.how[len("recorded") :].strip(" :()"))
        return Verdict(
            block,
            False,
            f"unknown kind {block.how!r}: say 'produced by the command in its first line', "
            "'produced by: COMMAND', 'copied from FILE' or 'recorded'",
        )
    except ValueError as problem:
        return Verdict(block, False, str(problem))


# --- links ---------------------------------------------------------------------------------


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped (hyphens and underscores
    kept), spaces to hyphens, a repeated anchor numbered -1, -2, ..."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for line in text.split("\n"):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = re.sub(r"`|\*\*|\*|<[^>]+>|\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out.update(re.findall(r'<a (?:name|id)="([^"]+)"', text))
    return out


def link_problems(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    prose = re.sub(r"`[^`\n]*`", lambda m: " " * len(m.group(0)), prose)
    problems = []
    for m in LINK.finditer(prose):
        target = m["target"]
        if re.match(r"^[a-z][a-z0-9+.\-]*:", target):  # http:, https:, mailto:
            continue
        line = prose.count("\n", 0, m.start()) + 1
        path_part, _, anchor = target.partition("#")
        goal = (page.parent / path_part).resolve() if path_part else page
        if not goal.exists():
            problems.append(f"{_rel(page)}:{line}: link to {target}: {path_part} does not exist")
            continue
        if anchor and goal.suffix == ".md" and anchor not in anchors(goal):
            problems.append(f"{_rel(page)}:{line}: link to {target}: no heading #{anchor} in {_rel(goal)}")
    return problems


# --- command -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ci/docs.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the marked blocks from fresh runs")
    parser.add_argument("--links", action="store_true", help="check the links only")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these blocks")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="commands run at once")
    args = parser.parse_args(argv)

    failed = 0
    for page in pages():
        for problem in link_problems(page):
            print(problem)
            failed += 1
    if args.links:
        print(f"ci/docs.py: links {'OK' if not failed else f'{failed} broken'}")
        return 1 if failed else 0

    todo = [b for page in pages() for b in blocks(page) if not args.only or b.name in args.only]
    if args.only and {b.name for b in todo} != set(args.only):
        print(f"ci/docs.py: no block named {sorted(set(args.only) - {b.name for b in todo})}")
        return 2
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        verdicts = list(pool.map(judge, todo))

    updates: dict[Path, list[Verdict]] = {}
    for v in verdicts:
        if v.ok:
            print(f"ok        {_rel(v.block.page)} {v.block.name}" + (f" ({v.message})" if v.message else ""))
            continue
        if args.update and v.new_body is not None:
            updates.setdefault(v.block.page, []).append(v)
            print(f"updated   {_rel(v.block.page)} {v.block.name}")
            continue
        failed += 1
        one_line = "\n" not in v.message
        print(f"DIFFERS   {_rel(v.block.page)} {v.block.name}" + (f": {v.message}" if one_line else ""))
        if not one_line:
            print("    " + v.message.replace("\n", "\n    "))
    for page, changed in updates.items():
        text = page.read_text(encoding="utf-8")
        for v in sorted(changed, key=lambda v: v.block.start, reverse=True):
            text = text[: v.block.start] + v.new_body.rstrip("\n") + "\n" + text[v.block.end :].lstrip("\n")
        page.write_text(text, encoding="utf-8")
    if failed:
        print(f"ci/docs.py: {failed} problem(s); `python ci/docs.py --update` rewrites the blocks from fresh runs")
        return 1
    rewritten = sum(len(changed) for changed in updates.values())
    if rewritten:
        print(f"ci/docs.py: {rewritten} block(s) rewritten from fresh runs; review `git diff`")
        return 0
    print(f"ci/docs.py: {len(verdicts)} blocks and the links OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
