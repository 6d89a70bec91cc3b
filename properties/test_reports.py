"""Report files and CI output of ``dnspec verify`` (issue 15): JUnit XML, the HTML page
with its pictures, GitHub annotations, ``dnspec demo --plot``, and the text-only page
without matplotlib.

Each verify run is made once per module (``--profile ci --max-examples 5``, a few
properties, two regimes) and its report files are read by several tests. The broken
implementations are the command-line fixtures: ``broken.py`` (object queries may attend
to dn rows) and the D-FINE-pattern fork (a crash at box_noise_scale 0, crossed boxes
flipped to |w|).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dnspec.cli import main

HERE = Path(__file__).parent
BROKEN = f"{HERE / 'cli_fixtures' / 'broken.py'}:build"
DFINE = f"{HERE / 'repo_fixtures' / 'rtdetr_fork' / 'src' / 'zoo' / 'rtdetr' / 'denoising_dfine.py'}:get_contrastive_denoising_training_group"
FAST = ["--profile", "ci", "--max-examples", "5"]
REGIMES = ["--regime", "common", "box_noise_scale_0"]
PNG = b"\x89PNG\r\n\x1a\n"

# box_magnitudes' bug: every magnitude scaled by 0.9 (the reference otherwise)
MAGNITUDES_BUG = """
from dataclasses import replace
import torch
from dnspec.contract.noise import draw_noise
from dnspec.contract.reference import NO_OUTPUT, build_from_noise

def build(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    counts = [len(t["labels"]) for t in targets]
    if num_denoising <= 0 or max(counts, default=0) == 0:
        return NO_OUTPUT
    m = max(counts)
    noise = draw_noise(len(targets), 2 * m * max(1, num_denoising // m), num_classes, label_noise_ratio, box_noise_scale,
                       box_dtype=targets[0]["boxes"].dtype)
    if noise.box_magnitude is not None:
        noise = replace(noise, box_magnitude=noise.box_magnitude * 0.9)
    return build_from_noise(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise)
"""


def _verify(tmp: Path, spec: str, *argv, env=None) -> tuple[int, dict, Path]:
    """Run verify in-process writing .json, .xml and .html reports; (exit code, JSON data, folder)."""
    code = main(
        [
            "verify",
            spec,
            *FAST,
            *argv,
            "--report",
            str(tmp / "r.json"),
            "--report",
            str(tmp / "r.xml"),
            "--report",
            str(tmp / "r.html"),
        ]
    )
    return code, json.loads((tmp / "r.json").read_text()), tmp


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    """broken.py on a mask property, a skipped property, a statistical one and an advisory."""
    tmp = tmp_path_factory.mktemp("broken")
    return _verify(
        tmp,
        BROKEN,
        "--only",
        "structure",
        "attention_mask",
        "injected_noise_matches_reference",
        "label_flip_rate",
        "box_output_space",
        *REGIMES,
    )


@pytest.fixture(scope="module")
def dfine_run(tmp_path_factory):
    """The D-FINE pattern: a crash at scale 0 (many properties) and crossed boxes."""
    tmp = tmp_path_factory.mktemp("dfine")
    return _verify(tmp, DFINE, "--only", "structure", "boxes", *REGIMES)


# --- JUnit XML ---------------------------------------------------------------------------------


def _testcases(path: Path):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    return root, suite, suite.findall("testcase")


def test_junit_has_one_testcase_per_property_and_regime(broken_run):
    code, data, tmp = broken_run
    assert code == 1
    root, suite, cases = _testcases(tmp / "r.xml")
    # expected from the JSON report of the same run: generated properties in each swept regime, fixed ones once
    expected = {}
    for o in data["outcomes"]:
        if o["status"] == "skip":
            regimes = data["regimes"] if o["kind"] in ("contract", "agreement") else ["fixed workload"]
            expected.update({f"{o['label']}[{r}]": "skip" for r in regimes})
        else:
            expected.update({f"{o['label']}[{r}]": s for r, s in o["regimes"].items()})
    names = {c.get("name"): c for c in cases}
    assert len(names) == len(cases) == len(expected), sorted(names)
    assert set(names) == set(expected)
    assert data["regimes"] == ["common", "box_noise_scale_0"]
    assert "attention_mask[common]" in names and "label_flip_rate[fixed workload]" in names
    by_status = {s: sum(1 for v in expected.values() if v == s) for s in ("fail", "skip")}
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(failures) == by_status["fail"] >= 1 and len(skipped) == by_status["skip"] == 2
    for element in (root, suite):
        assert element.get("tests") == str(len(cases)) and element.get("failures") == str(len(failures))
        assert element.get("errors") == "0"
        assert float(element.get("time")) == pytest.approx(data["seconds"], abs=0.01)
    assert suite.get("skipped") == str(len(skipped)) and root.get("skipped") is None  # junit-10.xsd: suite only
    assert names["attention_mask[common]"].get("classname") == "attention mask"
    assert names["label_flip_rate[fixed workload]"].get("classname") == "label statistics"


def test_junit_failure_holds_message_example_and_replay(broken_run):
    _, data, tmp = broken_run
    _, _, cases = _testcases(tmp / "r.xml")
    failure = next(c for c in cases if c.get("name") == "attention_mask[common]").find("failure")
    assert "object query" in failure.get("message") and failure.get("type") == "attention_mask.object_queries_see_dn"
    assert "minimal example" in failure.text and "CdnCase(" in failure.text
    assert "replay: dnspec verify " in failure.text and "--only attention_mask" in failure.text
    skipped = next(c for c in cases if c.get("name") == "injected_noise_matches_reference[common]").find("skipped")
    assert "does not accept an injected noise draw" in skipped.get("message")
    advisory = next(c for c in cases if c.get("name") == "box_output_space[fixed workload]")
    assert advisory.find("failure") is None and "ADVISORY" in advisory.find("system-out").text
    properties = {p.get("name"): p.get("value") for p in ET.parse(tmp / "r.xml").getroot().iter("property")}
    assert properties["spec"] == BROKEN and properties["compatibility"] == data["compatibility"]


def test_junit_for_a_spec_that_cannot_load_is_one_error(tmp_path):
    path = tmp_path / "r.xml"
    assert main(["verify", f"{HERE / 'cli_fixtures' / 'import_raises.py'}:build", "--report", str(path)]) == 2
    root, _, cases = _testcases(path)
    assert (
        root.get("errors") == "1" and len(cases) == 1 and "raised ImportError" in cases[0].find("error").get("message")
    )


# --- the HTML page ------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Every tag, image source, link and divergence section of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links = [], [], []
        self.sections: dict[str, list[str]] = {}  # divergence id -> image sources inside it
        self.notes: list[str] = []
        self._section = None
        self._depth = 0
        self._in_note = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section" and attrs.get("id", "").startswith("divergence-"):
            self._section, self._depth = attrs["id"], 0
            self.sections[self._section] = []
        if tag == "section" and self._section:
            self._depth += 1
        if tag == "img":
            self.images.append(attrs["src"])
            if self._section:
                self.sections[self._section].append(attrs["src"])
        if tag in ("a", "link", "script", "iframe") or "src" in attrs or "href" in attrs:
            self.links.append(attrs.get("href") or attrs.get("src") or tag)
        self._in_note = tag == "p" and attrs.get("class") == "note"

    def handle_endtag(self, tag):
        if tag == "section" and self._section:
            self._depth -= 1
            if self._depth == 0:
                self._section = None
        if tag == "p":
            self._in_note = False

    def handle_data(self, data):
        if self._in_note:
            self.notes.append(data)


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _decodes(src: str) -> bool:
    if src.startswith("data:image/png;base64,"):
        return base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG)
    if src.startswith("data:image/svg+xml"):
        ET.fromstring(base64.b64decode(src.split(",", 1)[1]) if ";base64," in src else src.split(",", 1)[1])
        return True
    return False


@pytest.mark.parametrize("run", ["broken_run", "dfine_run"])
def test_html_is_self_contained_and_every_image_decodes(request, run):
    _, data, tmp = request.getfixturevalue(run)
    page = _page(tmp / "r.html")
    assert page.tags[0] == "html" and "style" in page.tags and "script" not in page.tags and "link" not in page.tags
    assert page.images and all(_decodes(src) for src in page.images)
    assert all(link.startswith(("#", "data:")) for link in page.links), page.links  # nothing from the network
    html = (tmp / "r.html").read_text(encoding="utf-8")
    assert data["compatibility"] in unescape(html) and "Property x regime" in html


@pytest.mark.parametrize("run", ["broken_run", "dfine_run"])
def test_every_failing_property_has_a_picture(request, run):
    _, data, tmp = request.getfixturevalue(run)
    page = _page(tmp / "r.html")
    failing = [o for o in data["outcomes"] if o["status"] == "fail"]
    assert failing
    for outcome in failing:
        assert any(page.sections.get(f"divergence-{n}") for n in outcome["divergences"]), outcome["label"]
    assert all(page.sections[f"divergence-{d['number']}"] for d in data["divergences"])


def test_heat_map_marks_the_divergences(dfine_run):
    _, data, tmp = dfine_run
    html = (tmp / "r.html").read_text(encoding="utf-8")
    crash = next(d for d in data["divergences"] if d["kind"] == "raises")
    crossed = next(d for d in data["divergences"] if d["name"] == "boxes.crossed")
    assert f'href="#divergence-{crash["number"]}"' in html and f'href="#divergence-{crossed["number"]}"' in html
    assert html.count('<td class="fail"') == sum(s == "fail" for o in data["outcomes"] for s in o["regimes"].values())


def test_mask_picture_shows_the_wrong_cells(broken_run):
    """The returned panel of the mask picture has the highlight colour where the mask is
    wrong (object queries x dn rows); the expected panel has none of it."""
    from matplotlib.colors import to_rgb

    from dnspec.contract.layout import CdnLayout
    from dnspec.reports.pictures.figures import LEAK
    from dnspec.reports.pictures.mask import draw_mask, mask_image

    layout = CdnLayout((2, 1), num_denoising=4, num_queries=3)
    expected = layout.attn_mask().numpy()
    got = expected.copy()
    got[layout.num_dn_rows :, : layout.num_dn_rows] = False
    rgb = mask_image(got, expected)
    leak = (rgb == to_rgb(LEAK)).all(-1)
    assert leak.sum() == (expected != got).sum() and leak[layout.num_dn_rows :, : layout.num_dn_rows].all()
    assert draw_mask(expected, got, num_dn=layout.num_dn_rows, group_width=4).startswith(PNG)
    _, data, tmp = broken_run
    assert "attention mask of the minimal example" in (tmp / "r.html").read_text(encoding="utf-8")


def test_a_statistical_divergence_is_drawn_from_its_samples(tmp_path):
    module = tmp_path / "magnitudes_bug.py"
    module.write_text(MAGNITUDES_BUG)
    code = main(["verify", f"{module}:build", *FAST, "--only", "box_magnitudes", "--report", str(tmp_path / "r.html")])
    assert code == 1
    page = _page(tmp_path / "r.html")
    assert len(page.sections["divergence-1"]) == 1 and _decodes(page.sections["divergence-1"][0])
    assert "box_magnitudes: observed vs expected" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_sample_helpers_agree_with_the_checks(tmp_path):
    """The samples the pictures draw are the ones the checks test: the reference passes
    each check and each helper's p-values are above alpha; the magnitude bug fails both."""
    from dnspec.checks import distributions
    from dnspec.implementations.specs import load_implementation

    reference = load_implementation("reference")
    flips = distributions.label_flip_samples(reference)
    assert all(r["p_value"] >= flips["alpha"] for r in flips["roles"].values()) and flips["padding_changed"] == 0
    module = tmp_path / "magnitudes_bug.py"
    module.write_text(MAGNITUDES_BUG)
    bug = load_implementation(f"{module}:build")
    good, bad = distributions.box_magnitude_samples(reference), distributions.box_magnitude_samples(bug)
    assert all(m["p_value"] >= good["alpha"] for m in good["magnitudes"].values())
    assert all(m["p_value"] < bad["alpha"] for m in bad["magnitudes"].values())
    with pytest.raises(AssertionError):
        distributions.check_box_magnitudes(bug)


def test_a_picture_that_cannot_be_drawn_is_a_note(monkeypatch):
    from dnspec.generation.cases import CdnCase, make_targets
    from dnspec.implementations.specs import load_implementation
    from dnspec.reports import pictures
    from dnspec.running.divergences import VIOLATES, Divergence, Finding, Signature

    case = CdnCase(targets=make_targets((2, 1), seed=0, num_classes=3), num_classes=3, num_queries=3, num_denoising=4)
    finding = Finding("attention_mask", Signature(VIOLATES, "attention_mask.object_queries_see_dn"), "wrong", case)
    divergence = Divergence(1, finding.signature, [finding], example_case=case, example_label="attention_mask")

    def fails(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(pictures, "draw_mask", fails)
    drawn = pictures.divergence_pictures(load_implementation(BROKEN), [divergence])
    (picture,) = drawn.by_divergence[1]
    assert picture.png is None and "could not be drawn: RuntimeError: no canvas" in picture.note


# --- GitHub annotations --------------------------------------------------------------------------


def test_github_actions_prints_one_error_per_divergence(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(HERE.parent))
    code = main(
        [
            "verify",
            DFINE,
            *FAST,
            "--only",
            "structure",
            "boxes",
            "no_collapsed_boxes",
            *REGIMES,
            "--no-shrink",
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "r.json").read_text())
    errors = [line for line in out.splitlines() if line.startswith("::error")]
    warnings = [line for line in out.splitlines() if line.startswith("::warning")]
    assert code == 1 and len(errors) == len(data["divergences"]) == 2
    assert len(warnings) == sum(o["status"] == "advisory" for o in data["outcomes"])
    for line in errors:
        head, message = line[len("::error ") :].split("::", 1)
        properties = dict(item.split("=", 1) for item in head.split(","))
        assert (
            properties["title"].startswith("dnspec ")
            and "%3A" in properties["title"]
            and ":" not in properties["title"]
        )
        assert "\n" not in message and "%0A" in message and "replay%3A" not in message
    crash = next(line for line in errors if "UnboundLocalError" in line)
    assert "file=properties/repo_fixtures/rtdetr_fork/src/zoo/rtdetr/denoising_dfine.py" in crash and ",line=" in crash


def test_no_annotations_off_github_actions(capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    main(["verify", BROKEN, *FAST, "--only", "attention_mask", "--regime", "common", "--no-shrink"])
    assert "::error" not in capsys.readouterr().out


def test_workflow_command_escaping():
    from dnspec.reports.annotations import command, escape_data, escape_property

    assert escape_data("50% done\r\nnext: a, b") == "50%25 done%0D%0Anext: a, b"
    assert escape_property("a: b, 50%\n") == "a%3A b%2C 50%25%0A"
    assert command("error", "line 1\nline 2", title="t: x, y") == "::error title=t%3A x%2C y::line 1%0Aline 2"
    assert command("warning", "plain") == "::warning::plain"


# --- dnspec demo --plot and the text-only fallback --------------------------------------------------


def test_demo_plot_writes_a_png(tmp_path, capsys):
    path = tmp_path / "demo.png"
    assert main(["demo", "reference", "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(PNG) and f"wrote {path}" in capsys.readouterr().out
    assert main(["demo", "reference", "--plot", str(tmp_path / "demo.txt")]) == 2


def test_without_matplotlib_the_page_is_text_only(tmp_path):
    """In a fresh interpreter: a run without an .html report never imports matplotlib;
    with matplotlib hidden, the page renders, has no image and names the extra; demo
    --plot exits 2 naming it."""
    script = textwrap.dedent(f"""
        import sys
        from dnspec.cli import main
        main(["verify", {BROKEN!r}, "--profile", "ci", "--max-examples", "5", "--only", "attention_mask",
              "--regime", "common", "--no-shrink", "--report", {str(tmp_path / "r.md")!r}, "--report", {str(tmp_path / "r.xml")!r}])
        print("imported:", "matplotlib" in sys.modules)
        sys.modules["matplotlib"] = None
        code = main(["verify", {BROKEN!r}, "--profile", "ci", "--max-examples", "5", "--only", "attention_mask",
                     "--regime", "common", "--no-shrink", "--report", {str(tmp_path / "r.html")!r}])
        print("verify:", code)
        print("demo:", main(["demo", "--plot", {str(tmp_path / "d.png")!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "imported: False" in done.stdout and "verify: 1" in done.stdout and "demo: 2" in done.stdout
    assert "Traceback" not in done.stderr and "pip install 'dnspec[plot]'" in done.stderr
    page = _page(tmp_path / "r.html")
    assert not page.images and any("pip install 'dnspec[plot]'" in note for note in page.notes)
    assert "object_queries_see_dn" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert not (tmp_path / "d.png").exists()
