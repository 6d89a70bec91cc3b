"""``dnspec verify --report FILE.html``: the report as one self-contained page.

Inline CSS, every picture a ``data:image/png;base64`` URI, no script and nothing loaded
from the network, so the file can be attached to a CI run, mailed or opened offline.
The page reads top to bottom: the verdict and the compatibility line; the divergences
in one line each; a heat map of property x regime (pass / divergence / skipped /
advisory, from :mod:`dnspec.reports.grid`); each property's line; then each divergence in
full, with its pictures (:mod:`dnspec.reports.pictures`: redrawn from the live implementation
during the run), its minimal example and replay command; the advisories, notes and
captured output.

The pictures come from the run (``pictures``); a page rendered from a saved JSON report,
or without matplotlib, has text only and says which extra adds the pictures.
"""

from __future__ import annotations

import base64
import re
import sys
from html import escape, unescape
from pathlib import Path

from dnspec.calling.clean_text import clean
from dnspec.generation.regimes import BY_NAME as REGIMES
from dnspec.generation.regimes import COMMON
from dnspec.reports.grid import FIXED, columns, grid
from dnspec.reports.pictures import PLOT_EXTRA, Pictures
from dnspec.reports.records import STATUS_WORD, VerifyReport, human_size, one_line
from dnspec.reports.text import summary_line

CSS = """
:root { --pass: #2b8a3e; --pass-bg: #d3f9d8; --fail: #c92a2a; --fail-bg: #ffc9c9; --skip: #868e96; --skip-bg: #f1f3f5;
        --adv: #862e9c; --adv-bg: #f3d9fa; --ink: #212529; --muted: #6c757d; --line: #dee2e6; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color: var(--ink);
       margin: 0; background: #f8f9fa; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 64px; background: white; min-height: 100vh; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 0 0 8px; }
code, pre { font: 12.5px/1.4 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre { background: #f1f3f5; padding: 10px 12px; border-radius: 6px; white-space: pre-wrap; word-break: break-all; margin: 6px 0; }
.muted { color: var(--muted); }
.verdict { overflow-wrap: anywhere; margin: 14px 0; padding: 12px 16px; border-radius: 8px; font-size: 16px; font-weight: 600; }
.verdict.ok { background: var(--pass-bg); color: var(--pass); }
.verdict.bad { background: var(--fail-bg); color: var(--fail); }
.compat { font-size: 15px; margin: 6px 0 12px; }
ol.divlist { padding-left: 22px; overflow-wrap: anywhere; } ol.divlist li { margin: 3px 0; }
table { border-collapse: collapse; }
table.props { width: 100%; table-layout: fixed; } table.props td, table.props th { border-bottom: 1px solid var(--line);
       padding: 5px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; } table.props th { background: #f8f9fa; }
.status { font-weight: 700; font-size: 12px; padding: 1px 6px; border-radius: 4px; white-space: nowrap; }
.status.pass { color: var(--pass); background: var(--pass-bg); } .status.fail { color: var(--fail); background: var(--fail-bg); }
.status.skip { color: var(--skip); background: var(--skip-bg); } .status.advisory { color: var(--adv); background: var(--adv-bg); }
.heat { font-size: 12px; margin-top: 4px; }
.heat th.regime { height: 150px; vertical-align: bottom; padding: 0 0 6px; width: 30px; }
.heat th.regime div { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; margin: 0 auto; font-weight: 500; }
.heat th.prop { text-align: right; padding: 0 8px; font-weight: 500; white-space: nowrap; }
.heat td { width: 30px; height: 20px; text-align: center; border: 2px solid white; font-weight: 700; font-size: 11px; }
.heat td.pass { background: #8ce99a; } .heat td.fail { background: #fa5252; color: white; }
.heat td.known { background: #ffd43b; color: #5c3c00; } .status.known { color: #5c3c00; background: #fff3bf; }
.heat td.skip { background: #e9ecef; color: #868e96; } .heat td.advisory { background: #da77f2; color: white; }
.heat td.none { background: white; color: #ced4da; }
.heat td a { color: inherit; text-decoration: none; display: block; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin-right: 4px; border-radius: 3px; }
section.divergence { border: 1px solid var(--line); border-left: 6px solid var(--fail); border-radius: 8px; padding: 14px 18px;
       margin: 18px 0; }
section.divergence .what { font-size: 15px; margin: 6px 0 10px; overflow-wrap: anywhere; }
figure { margin: 14px 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.note { background: #fff9db; border: 1px solid #ffe066; border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
details summary { cursor: pointer; color: var(--muted); margin: 6px 0; }
"""


def _e(text) -> str:
    return escape(clean(str(text)), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _link_divergences(text: str) -> str:
    """'divergence 2' in (escaped) text as a link to its section."""
    return re.sub(r"\bdivergence (\d+)", r'<a href="#divergence-\1">divergence \1</a>', text)


def _status(status: str) -> str:
    return f'<span class="status {_e(status)}">{_e(STATUS_WORD.get(status, status.upper()))}</span>'


def _regime_title(name: str) -> str:
    if name == COMMON:
        return "common regime"
    if name == FIXED:
        return "fixed workload"
    return REGIMES[name].title if name in REGIMES else name


def heat_map(report: VerifyReport) -> str:
    """The property x regime table: one coloured cell per property and regime."""
    cols = columns(report)
    out = ['<table class="heat"><tr><th></th>']
    out += [f'<th class="regime" title="{_e(c)}"><div>{_e(_regime_title(c))}</div></th>' for c in cols]
    out.append("</tr>")
    marks = {"pass": "", "fail": "", "skip": "&ndash;", "advisory": "A", "known": "K"}
    for outcome, cells in grid(report):
        out.append(f'<tr><th class="prop">{_e(outcome.label)}</th>')
        for column in cols:
            cell = cells.get(column)
            if cell is None:
                out.append('<td class="none" title="not run here">&middot;</td>')
                continue
            tip = f"{outcome.label} in {_regime_title(column)}: {STATUS_WORD.get(cell.status, cell.status)}"
            if cell.message:
                tip += " - " + one_line(cell.message, 240)
            text = marks.get(cell.status, "")
            if cell.status == "fail" and cell.divergences:
                numbers = ",".join(str(n) for n in cell.divergences)
                text = f'<a href="#divergence-{cell.divergences[0]}">{_e(numbers)}</a>'
            out.append(f'<td class="{_e(cell.status)}" title="{_e(tip)}">{text}</td>')
        out.append("</tr>")
    out.append("</table>")
    out.append(
        '<p class="legend"><span><i style="background:#8ce99a"></i>holds</span>'
        '<span><i style="background:#fa5252"></i>divergence (its number)</span>'
        '<span><i style="background:#e9ecef"></i>skipped</span>'
        '<span><i style="background:#da77f2"></i>advisory (RT-DETR violates it too)</span>'
        '<span><i style="background:#ffd43b"></i>known divergence (accepted)</span>'
        '<span><i style="background:white;border:1px solid #ced4da"></i>not run there</span></p>'
    )
    return "\n".join(out)


def _pictures_html(number: int, pictures: Pictures | None) -> str:
    if pictures is None:
        return (
            f'<p class="note">No pictures: they are drawn during a <code>dnspec verify ... --report FILE.html</code> run '
            f"(with matplotlib: <code>{_e(PLOT_EXTRA)}</code>).</p>"
        )
    if pictures.unavailable:
        return f'<p class="note">{_e(pictures.unavailable)}.</p>'
    out = []
    for picture in pictures.by_divergence.get(number, []):
        if picture.png:
            caption = _e(picture.title) + (f" &mdash; {_e(picture.caption)}" if picture.caption else "")
            out.append(
                f'<figure><img alt="{_e(picture.title)}" src="{data_uri(picture.png)}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        else:
            out.append(f'<p class="note">Picture ({_e(picture.title)}): {_e(picture.note or "not drawn")}</p>')
    return "\n".join(out)


def _convention_lines(report: VerifyReport) -> list[str]:
    """The verdict's convention lines, where this dnspec has them."""
    from dnspec.reports import text as render

    lines = getattr(render, "convention_lines", None)
    try:
        return lines(report) if lines and hasattr(report, "conventions") else []
    except Exception:  # a report from another version: the line is optional
        return []


def html_page(report: VerifyReport, pictures: Pictures | None = None) -> str:
    """The whole page (see the module docstring)."""
    title = f"dnspec verify: {report.label}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
    ]
    if report.command:
        out.append(f'<div class="muted"><code>{_e(report.command)}</code></div>')
    env = ", ".join(f"{k} {v}" for k, v in report.environment.items())
    opts = ", ".join(f"{k}={v}" for k, v in report.options.items() if v not in (None, "", [], False))
    if env or opts:
        out.append(f'<div class="muted">environment: {_e(env or "-")}; options: {_e(opts or "-")}</div>')
    if report.error:
        out.append(f'<div class="verdict bad">cannot run: {_e(report.error)}</div>')
        out.append("</main></body></html>")
        return "\n".join(out) + "\n"
    bad = report.counts()["fail"] > 0
    out.append(f'<div class="verdict {"bad" if bad else "ok"}">{_e(summary_line(report))}</div>')
    if report.compatibility:
        out.append(f'<div class="compat"><b>Compatibility:</b> {_e(report.compatibility)}</div>')
    for line in _convention_lines(report):
        out.append(f'<div class="compat">{_e(line[0].upper() + line[1:])}.</div>')
    if pictures is not None and pictures.unavailable:
        out.append(f'<p class="note">{_e(pictures.unavailable)}.</p>')
    for title, group in (
        ("", [d for d in report.divergences if not d.known]),
        ("Known divergences (accepted)", [d for d in report.divergences if d.known]),
    ):
        if not group:
            continue
        if title:
            out.append(f"<h3>{_e(title)}</h3>")
        out.append('<ol class="divlist">')
        for d in group:
            why = f" <b>KNOWN</b> ({_e(d.accepted_by)}): {_e(d.accepted)}." if d.known else ""
            out.append(
                f'<li value="{d.number}"><a href="#divergence-{d.number}"><code>{_e(d.id)}</code></a>, in {_e(d.regimes_text)}: '
                f"{_e(one_line(d.title, 220))}{why}</li>"
            )
        out.append("</ol>")
    for entry in report.fixed:
        out.append(
            f'<p class="note">FIXED: <code>{_e(entry["id"])}</code> no longer happens; remove it from accept.</p>'
        )

    out.append("<h2>Property x regime</h2>")
    out.append(heat_map(report))

    if report.divergences:
        out.append("<h2>Divergences</h2>")
    for d in report.divergences:
        out.append(f'<section class="divergence" id="divergence-{d.number}">')
        known = " (KNOWN)" if d.known else ""
        out.append(f"<h3>{d.number}. <code>{_e(d.display_name)}</code>, in {_e(d.regimes_text)}{known}</h3>")
        out.append(f'<div class="what">{_e(d.title)}</div>')
        out.append('<dl class="facts">')
        out.append(f"<dt>properties</dt><dd>{', '.join(f'<code>{_e(p)}</code>' for p in d.properties)}</dd>")
        out.append(f"<dt>id</dt><dd><code>{_e(d.id)}</code></dd>")
        if d.known:
            out.append(f"<dt>accepted</dt><dd>{_e(d.accepted)} ({_e(d.accepted_by)})</dd>")
        out.append(f"<dt>kind</dt><dd>{_e(d.kind)}</dd>")
        if d.where:
            out.append(f"<dt>raised at</dt><dd><code>{_e(d.where)}</code></dd>")
        out.append("</dl>")
        if d.where_details:
            out.append(f"<pre>{_e(d.where_details)}</pre>")
        out.append(_pictures_html(d.number, pictures))
        if d.example:
            how = "shrunk by Hypothesis" if d.example_shrunk else "not shrunk"
            out.append(
                f"<div>Minimal example (<code>{_e(d.example_property)}</code> in {_e(d.example_regime)}, {how}):</div>"
            )
            out.append(f"<pre>{_e(d.example)}</pre>")
        elif d.cells:
            out.append(
                f"<div>Seen on <code>{_e(d.example_property or d.cells[0]['property'])}</code>'s fixed seeded workload.</div>"
            )
        if d.replay:
            out.append(f"<div>Replay:</div><pre>{_e(d.replay)}</pre>")
        if len(d.cells) > 1:
            out.append(f"<details><summary>Where each property saw it ({len(d.cells)} cells)</summary><ul>")
            out += [
                f"<li><code>{_e(c['property'])}</code> in {_e(c['regime'])}: {_e(one_line(c['message'], 300))}</li>"
                for c in d.cells
            ]
            out.append("</ul></details>")
        out.append("</section>")

    out.append("<h2>Properties</h2>")
    out.append(
        '<table class="props"><colgroup><col style="width:92px"><col style="width:270px"><col style="width:130px"><col></colgroup>'
        "<tr><th>status</th><th>property</th><th>family</th><th>result</th></tr>"
    )
    for r in report.outcomes:
        text = _link_divergences(_e(one_line(r.message or r.summary, 400)))
        out.append(
            f"<tr><td>{_status(r.status)}</td><td><code>{_e(r.label)}</code></td><td>{_e(r.family)}</td><td>{text}</td></tr>"
        )
    out.append("</table>")

    advisories = [r for r in report.outcomes if r.status == "advisory"]
    if advisories:
        out.append("<h2>Advisories</h2>")
        out.append(
            '<p class="muted">RT-DETR itself violates these; they are reported, not failed (<code>--strict</code> fails them).</p>'
        )
        for r in advisories:
            out.append(f"<h3><code>{_e(r.label)}</code></h3><pre>{_e((r.details or r.message).rstrip())}</pre>")
    if report.notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(note)}</li>" for note in report.notes) + "</ul>")
    if report.captured_output.get("chars"):
        head = "\n".join(
            line if len(line) <= 200 else line[:197] + "..."
            for line in report.captured_output.get("head", "").splitlines()[:40]
        )
        out.append("<h2>Output printed by the implementation</h2>")
        out.append(
            f"<p>{_e(human_size(report.captured_output['chars']))} in all (captured, not shown on the terminal). Beginning:</p>"
        )
        out.append(f"<pre>{_e(head)}</pre>")
    out.append(
        f'<p class="muted">Written by dnspec {_e(report.environment.get("dnspec", ""))} in {report.seconds:.1f} s. '
        "Pictures are redrawn from the implementation during the run, on each divergence's minimal example.</p>"
    )
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


# --- pulling the pictures back out (python -m dnspec.reports.html PAGE.html FOLDER) --------------

_FIGURE = re.compile(
    r'<section class="divergence" id="divergence-(\d+)">|<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">'
)


def extract_pictures(page: str | Path, folder: str | Path, prefix: str = "") -> list[tuple[Path, str]]:
    """Write every picture of a report page to ``folder`` as ``{prefix}{n}-{k}.png`` (the
    k-th picture of divergence n; prefix: the page's name and a dash); returns (path,
    title) pairs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = prefix or Path(page).stem + "-"
    written, number, count = [], 0, 0
    for match in _FIGURE.finditer(Path(page).read_text(encoding="utf-8")):
        if match.group(1):
            number, count = int(match.group(1)), 0
            continue
        count += 1
        path = folder / f"{prefix}{number}-{count}.png"
        path.write_bytes(base64.b64decode(match.group(3)))
        written.append((path, unescape(match.group(2))))
    return written


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m dnspec.reports.html PAGE.html FOLDER [PREFIX]")
    for written, title in extract_pictures(*sys.argv[1:]):
        print(f"{written}: {title}")
