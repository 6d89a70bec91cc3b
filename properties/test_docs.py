"""The documentation check (``ci/docs.py``) can fail, and the pages pass it where it is
cheap to ask here: every link and anchor between README.md, CONTRIBUTING.md and docs/*.md
resolves, and every marked block is of a kind the checker knows. (Re-running the blocks'
commands is ``python ci/docs.py`` itself, run by ci/test.sh after the suite.)

The checker's own behaviour is tested on pages written under tmp_path: a block whose
output changed is caught and ``--update`` rewrites it, volatile parts (seconds, the
clone's path) are not a difference, ``...`` stands for any lines, a copied block must be
its file's paragraphs, a broken link or anchor is named, and a block that differs only in
a locked package's version says which package moved (and nothing else is called that)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_checker():
    spec = importlib.util.spec_from_file_location("dnspec_ci_docs", ROOT / "ci" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


docs = _load_checker()


def test_every_link_and_anchor_between_the_pages_resolves():
    pages = docs.pages()
    assert {p.name for p in pages} >= {"README.md", "CONTRIBUTING.md", "properties.md", "architecture.md"}
    problems = [problem for page in pages for problem in docs.link_problems(page)]
    assert not problems, problems


def test_every_marked_block_is_of_a_known_kind():
    found = [block for page in docs.pages() for block in docs.blocks(page)]
    assert len(found) >= 6
    assert not [(b.page.name, b.name, b.how) for b in found if b.kind == "unknown"]
    assert any(b.page.name == "README.md" and b.kind == "produced" for b in found)


def _page(tmp_path, body: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(body, encoding="utf-8")
    return page


def test_a_changed_output_is_caught_and_update_rewrites_it(tmp_path):
    page = _page(
        tmp_path,
        "# t\n\n<!-- greeting: produced by the command in its first line -->\n```\n$ printf 'hello\\nworld\\n'\n"
        "hello\nmoon\n```\n<!-- /greeting -->\n\nafter\n",
    )
    (block,) = docs.blocks(page)
    verdict = docs.judge(block)
    assert not verdict.ok and "-moon" in verdict.message and "+world" in verdict.message
    page.write_text(
        page.read_text()[: block.start] + verdict.new_body + "\n" + page.read_text()[block.end :].lstrip("\n")
    )
    (again,) = docs.blocks(page)
    assert docs.judge(again).ok
    assert page.read_text().endswith("hello\nworld\n```\n<!-- /greeting -->\n\nafter\n")


def test_volatile_parts_and_elided_lines_are_not_differences(tmp_path):
    page = _page(
        tmp_path,
        "<!-- run: produced by the command in its first line -->\n```\n"
        f"$ printf 'head\\nA\\nB\\nC\\n{ROOT}/x.py: conforms in 7.2 s\\n'\n"
        "head\n...\nx.py: conforms in 0.5 s\n```\n<!-- /run -->\n",
    )
    (block,) = docs.blocks(page)
    assert docs.judge(block).ok
    assert docs.matches("a\n...\nz", "a\nz") and docs.matches("a\n...\nz", "a\nb\nc\nz")
    assert not docs.matches("a\n...\nz", "a\nb\ny")
    assert not docs.matches("conforms (21 passed) in 6.2 s", "conforms (20 passed) in 6.2 s")
    assert docs.elided("head\n...\ntail", "1\n2\n3\n4") == "1\n...\n4"


def test_a_copied_block_must_be_its_files_paragraphs(tmp_path, monkeypatch):
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    (tmp_path / "table.md").write_text("# title\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\nnote 1\n\nrest\n")
    good = "<!-- t: copied from table.md -->\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\nnote 1\n<!-- /t -->\n"
    (block,) = docs.blocks(_page(tmp_path, good))
    assert docs.judge(block).ok
    (block,) = docs.blocks(_page(tmp_path, good.replace("| 1 | 2 |", "| 1 | 3 |")))
    verdict = docs.judge(block)
    assert not verdict.ok and "| 1 | 2 |" in verdict.new_body
    (block,) = docs.blocks(_page(tmp_path, good.replace("table.md", "gone.md")))
    assert "does not exist" in docs.judge(block).message


@pytest.mark.parametrize(
    ("link", "broken"),
    [
        ("[ok](other.md#a-heading)", False),
        ("[ok](other.md#second-1)", False),
        ("[ok](#here)", False),
        ("[anchor](other.md#no-such-heading)", True),
        ("[file](missing.md)", True),
        ("[web](https://example.org/x.md)", False),
        ("`[in code](missing.md)`", False),
    ],
)
def test_links_and_anchors(tmp_path, link, broken):
    (tmp_path / "other.md").write_text("# A heading\n\n## Second\n\n## Second\n")
    page = _page(tmp_path, f"# Here\n\nsee {link}\n\n```\n[fenced](missing.md)\n```\n")
    assert bool(docs.link_problems(page)) == broken


def test_a_difference_in_a_locked_packages_version_alone_names_the_package(tmp_path, monkeypatch):
    lock = tmp_path / "test.txt"
    lock.write_text(
        "transformers==5.25.0 \\\n    --hash=sha256:00\n    # via dnspec\ntorch==2.13.0+cpu \\\n    --hash=sha256:11\n"
    )
    monkeypatch.setattr(docs, "LOCKS", [lock])
    block = (
        "<!-- lineage: produced by the command in its first line -->\n```\n"
        "$ printf '| rt_detr | transformers 5.25.0 | conforms |\\nrows 3 in 1.5 s\\n'\n"
        "| rt_detr | transformers 5.24.0 | conforms |\nrows 3 in 9.0 s\n```\n<!-- /lineage -->\n"
    )
    (moved,) = docs.blocks(_page(tmp_path, block))
    verdict = docs.judge(moved)
    assert not verdict.ok and "\n" not in verdict.message
    assert verdict.message.startswith("differs: transformers 5.24.0 -> 5.25.0 (the lock's version now")
    assert "transformers 5.25.0" in verdict.new_body  # --update still rewrites it
    # a version the lock does not pin: the environment is not the lock's
    (stale,) = docs.blocks(_page(tmp_path, block.replace("transformers 5.25.0 |", "transformers 5.26.0 |")))
    message = docs.judge(stale).message
    assert "transformers 5.24.0 -> 5.26.0 (the lock pins 5.25.0)" in message and "bash ci/install.sh" in message


@pytest.mark.parametrize(
    ("documented", "actual"),
    [
        ("transformers 5.24.0\nrows 3", "transformers 5.25.0\nrows 4"),  # the version and something else
        ("spans 0.267 of 1.5", "spans 0.268 of 1.5"),  # a number after a word that is no package
        ("notapackage 1.2.3", "notapackage 1.2.4"),  # a name the lock does not pin
    ],
)
def test_other_differences_are_not_called_a_version_move(tmp_path, monkeypatch, documented, actual):
    lock = tmp_path / "test.txt"
    lock.write_text("transformers==5.25.0 \\\n    --hash=sha256:00\n")
    monkeypatch.setattr(docs, "LOCKS", [lock])
    assert docs.version_moves(documented, actual) is None
    assert docs.version_moves(documented, documented) is None


def test_the_real_lock_is_read():
    pins = docs.locked_versions()
    assert pins.get("torch", "").endswith("+cpu") and "transformers" in pins and "ruff" in pins
