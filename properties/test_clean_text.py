"""The implementation's text is shown clean (dnspec.calling.clean_text): no NUL, no terminal
escape sequence, no line that GitHub Actions would run as a workflow command, on the
terminal and in every report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dnspec.calling.clean_text import clean
from dnspec.calling.workers import can_fork
from dnspec.cli import main

VARIANTS = Path(__file__).parent / "selftest" / "stopping_variants.py"
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]|(?m:^\s*::)")


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain text\twith a tab\nand lines", "plain text\twith a tab\nand lines"),
        ("nul\x00byte", "nulbyte"),
        ("\x1b[1;31mred\x1b[0m", "red"),
        ("\x1b]0;a title\x07after", "after"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("over\rwrite", "over\nwrite"),
        ("::error::boom", ": :error::boom"),
        ("first\n  ::add-mask::secret", "first\n  : :add-mask::secret"),
        ("a :: in the middle", "a :: in the middle"),
        ("del\x7f c1\x9b31m", "del c1"),
        ("rtl\u202eevil", "rtlevil"),
    ],
)
def test_clean(text, shown):
    assert clean(text) == shown
    assert clean(clean(text)) == clean(text)


@pytest.mark.skipif(not can_fork("cpu"), reason="worker processes (Linux)")
def test_dirty_text_reaches_no_terminal_or_report_raw(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    reports = [tmp_path / name for name in ("r.md", "r.json", "r.html", "r.xml")]
    argv = ["verify", f"{VARIANTS}:dirty_text", "--profile", "ci", "--max-examples", "3", "--only", "structure"]
    for path in reports:
        argv += ["--report", str(path)]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "not a real error" in out and not UNSAFE.search(out + err)
    for path in reports[:1] + reports[2:]:
        text = path.read_text(encoding="utf-8")
        assert not UNSAFE.search(text), path.name
    data = json.loads(reports[1].read_text())
    for divergence in data["divergences"]:
        assert not UNSAFE.search(divergence["title"]) and "not a real error" in divergence["title"]
    assert not UNSAFE.search(data["captured_output"]["head"])
