"""The adapters of the peers that need torchvision: libreyolo's five builders and
lightly-train's LT-DETR (dnspec/adapters/libreyolo_peers.py, lightly_train_peer.py), and
the list of installed peers that ``ci/peers.sh`` hands to ``dnspec matrix``.

Runs in any venv. What needs a peer package skips with a reason when it is absent (the
default .venv has neither; ``bash ci/peers.sh`` builds .venv-peers, which has both, and
runs this file there). Discovery and the convention mapping are also checked on fake
package trees and recording fakes, which need no peer.

Where a peer claims RT-DETR's semantics, its output is compared with the reference's:
noise-free (label_noise_ratio 0 and box_noise_scale 0, or a small positive scale for the
builders that cannot take 0, compared within that noise's bound) and under the same
``torch.manual_seed`` with noise (bit for bit, except the sides that D-FINE's family
flips). The divergences the adapters' docstrings describe are pinned at the end: when
one starts failing, the peer changed and the account is stale.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from dnspec.contract.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid
from dnspec.contract.noise import draw_noise
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.generation.cases import CdnCase, make_targets, random_ragged_case
from dnspec.implementations.adapters import discovery, installed, libreyolo_peers, lightly_train_peer
from dnspec.implementations.specs import BUILTIN_PROVIDERS, SpecError, builtin_loaders, load_implementation

HAVE_LIBREYOLO = libreyolo_peers.libreyolo_root() is not None
HAVE_LIGHTLY_TRAIN = lightly_train_peer.lightly_train_root() is not None
NO_LIBREYOLO = "libreyolo is not installed here (bash ci/peers.sh builds .venv-peers with it and runs these tests)"
NO_LIGHTLY_TRAIN = (
    "lightly-train is not installed here (bash ci/peers.sh builds .venv-peers with it and runs these tests)"
)

LIBREYOLO_BUILDERS = libreyolo_peers.discover_builders()
LIGHTLY_TRAIN_BUILDERS = lightly_train_peer.discover_builders()
# every built-in name of the two providers (each discovered builder at RT-DETR's values,
# and libreyolo's recipe variants) with the reason to skip it (none where installed)
PEER_SPECS = [(name, "" if HAVE_LIBREYOLO else NO_LIBREYOLO) for name in libreyolo_peers.builtin_implementations()]
PEER_SPECS += [
    (name, "" if HAVE_LIGHTLY_TRAIN else NO_LIGHTLY_TRAIN) for name in lightly_train_peer.builtin_implementations()
]

# libreyolo 1.6.0 / lightly-train 0.18.0, as the adapters' docstrings describe them
RAISES_AT_ZERO_BOX_NOISE = {
    "libreyolo-dfine",
    "libreyolo-deim",
    "libreyolo-domedetr",
    "libreyolo-gtr",
    "lightly-train-ltdetr",
}
FLIPS_NEGATIVE_SIDES = {"libreyolo-dfine", "libreyolo-deim", "libreyolo-domedetr", "libreyolo-gtr"}
SMALL_SCALE = 1e-4  # the box noise of a "noise-free" call to a builder that cannot take 0
COLLAPSED = float(inverse_sigmoid(torch.tensor(0.0)))  # a crossed side in RT-DETR: log(1e-5)


def _peer_param(spec: str, reason: str):
    return pytest.param(spec, id=spec, marks=pytest.mark.skipif(bool(reason), reason=reason))


PEER_PARAMS = [_peer_param(spec, reason) for spec, reason in PEER_SPECS]


@pytest.fixture(scope="module")
def loaded():
    """Each peer SPEC loaded once (imports take seconds)."""
    cache: dict = {}

    def load(spec: str):
        if spec not in cache:
            cache[spec] = load_implementation(spec)
        return cache[spec]

    return load


def _assert_same_meta(ours: dict, theirs: dict, where: str) -> None:
    """dn_meta equal; a peer's extra keys allowed only where they say 'nothing extra'
    (GTR's dn_group_detr == 1)."""
    extra = set(theirs) - set(ours)
    assert extra <= {"dn_group_detr"}, f"{where}: extra dn_meta keys {sorted(extra)}"
    if "dn_group_detr" in theirs:
        assert theirs["dn_group_detr"] == 1, where
    assert set(ours) <= set(theirs), f"{where}: dn_meta lacks {sorted(set(ours) - set(theirs))}"
    assert theirs["dn_num_group"] == ours["dn_num_group"], where
    assert theirs["dn_num_split"] == ours["dn_num_split"], where
    assert isinstance(theirs["dn_positive_idx"], tuple), where
    assert len(theirs["dn_positive_idx"]) == len(ours["dn_positive_idx"]), where
    for a, b in zip(ours["dn_positive_idx"], theirs["dn_positive_idx"], strict=True):
        assert b.dtype == a.dtype and torch.equal(a, b), f"{where}: dn_positive_idx differs: {b} vs {a}"


def _takes_zero_box_noise(impl, case: CdnCase) -> bool:
    try:
        case.with_config(label_noise_ratio=0.0, box_noise_scale=0.0).call(impl)
    except UnboundLocalError:
        return False
    return True


# --- (i) discovery, on fake package trees --------------------------------------------


def _write(root, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


DEF = "import torch\n\ndef get_contrastive_denoising_training_group(targets, num_classes, num_queries, class_embed,\n        num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):\n    pass\n"


def test_libreyolo_discovery_reads_top_level_defs_under_models_only(tmp_path):
    _write(
        tmp_path,
        {
            "models/alpha/denoising.py": DEF,
            "models/beta/decoder.py": "from ..alpha.denoising import get_contrastive_denoising_training_group\n",
            "models/gamma/denoising.py": "def get_contrastive_denoising_training_group_v2(targets):\n    pass\n",
            "models/delta/obb_denoising.py": "def get_obb_contrastive_denoising_training_group(targets):\n    pass\n",
            "models/eps/denoising.py": "class A:\n    def get_contrastive_denoising_training_group(self):\n        pass\n",
            "models/zeta/extra/cdn.py": DEF,
            "tools/denoising.py": DEF,
        },
    )
    found = libreyolo_peers.discover_builders(tmp_path, package="fakeyolo")
    assert found == {"alpha": "fakeyolo.models.alpha.denoising", "zeta.extra.cdn": "fakeyolo.models.zeta.extra.cdn"}


def test_lightly_train_discovery_names_builders_by_their_folder(tmp_path):
    _write(
        tmp_path,
        {
            "_task_models/object_detection_components/denoising.py": DEF,
            "_task_models/object_detection_components/rtdetrv2_decoder.py": "from .denoising import get_contrastive_denoising_training_group\n",
            "_task_models/instance_segmentation_components/denoising.py": DEF,
            "_task_models/other/cdn.py": DEF,
        },
    )
    found = lightly_train_peer.discover_builders(tmp_path, package="fakelt")
    assert found == {
        "instance_segmentation": "fakelt._task_models.instance_segmentation_components.denoising",
        "ltdetr": "fakelt._task_models.object_detection_components.denoising",
        "other.cdn": "fakelt._task_models.other.cdn",
    }


def test_find_definitions_is_read_once_and_sorted(tmp_path):
    _write(tmp_path, {"b/x.py": DEF, "a/y.py": DEF})
    first = discovery.find_definitions(tmp_path, "pkg", "get_contrastive_denoising_training_group")
    assert [module for _, module in first] == ["pkg.a.y", "pkg.b.x"]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "z.py").write_text(DEF)
    assert discovery.find_definitions(tmp_path, "pkg", "get_contrastive_denoising_training_group") == first


def test_providers_are_registered():
    assert "dnspec.implementations.adapters.libreyolo_peers:builtin_implementations" in BUILTIN_PROVIDERS
    assert "dnspec.implementations.adapters.lightly_train_peer:builtin_implementations" in BUILTIN_PROVIDERS
    names = set(builtin_loaders())
    assert any(name.startswith("libreyolo-") for name in names)
    assert any(name.startswith("lightly-train-") for name in names)


def test_listing_names_imports_no_peer_package():
    code = textwrap.dedent(
        """
        import sys
        import dnspec
        from dnspec.implementations.specs import builtin_names
        from dnspec.implementations.adapters.installed import peer_specs
        builtin_names(); peer_specs()
        peers = ("libreyolo", "lightly_train", "lightly", "ultralytics", "transformers", "torchvision")
        print(sorted(m for m in sys.modules if m.split(".")[0] in peers))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_absent_peers_name_what_to_install(monkeypatch):
    monkeypatch.setattr(libreyolo_peers, "libreyolo_root", lambda: None)
    monkeypatch.setattr(lightly_train_peer, "lightly_train_root", lambda: None)
    libreyolo = libreyolo_peers.builtin_implementations()
    assert set(libreyolo) == {f"libreyolo-{m}" for m in ("rtdetr", "dfine", "deim", "domedetr", "gtr")}
    for load in libreyolo.values():
        with pytest.raises(SpecError, match=r"libreyolo is not installed; install libreyolo \(pip install libreyolo"):
            load()
    lightly = lightly_train_peer.builtin_implementations()
    assert list(lightly) == ["lightly-train-ltdetr"]
    with pytest.raises(
        SpecError, match=r"lightly-train is not installed; install lightly-train \(pip install lightly-train"
    ):
        lightly["lightly-train-ltdetr"]()


def test_installed_without_builders_says_so(monkeypatch, tmp_path):
    (tmp_path / "models").mkdir()
    monkeypatch.setattr(libreyolo_peers, "libreyolo_root", lambda: tmp_path)
    monkeypatch.setattr(lightly_train_peer, "lightly_train_root", lambda: tmp_path)
    loaders = libreyolo_peers.builtin_implementations()
    assert list(loaders) == ["libreyolo-rtdetr"]
    with pytest.raises(SpecError, match="has no models/.* defining get_contrastive_denoising_training_group"):
        loaders["libreyolo-rtdetr"]()
    loaders = lightly_train_peer.builtin_implementations()
    with pytest.raises(SpecError, match="has no module defining get_contrastive_denoising_training_group"):
        loaders["lightly-train-ltdetr"]()


# --- (ii) a fake libreyolo on sys.path: loading, variants, a peer that fails to import ---


RECORDING = """
import torch

CALLS = []


def get_contrastive_denoising_training_group(targets, num_classes, num_queries, class_embed,
        num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0{extra}):
    CALLS.append(dict(targets=targets, num_classes=num_classes, num_queries=num_queries, class_embed=class_embed,
                      num_denoising=num_denoising, label_noise_ratio=label_noise_ratio,
                      box_noise_scale=box_noise_scale{record}))
    return OUTPUTS
"""


@pytest.fixture
def fake_libreyolo(tmp_path, monkeypatch):
    """A package ``fakeyolo_<n>`` shaped like libreyolo, standing in for it."""
    package = f"fakeyolo_{abs(hash(str(tmp_path))) % 10**8}"
    _write(
        tmp_path,
        {
            f"{package}/__init__.py": "",
            f"{package}/models/__init__.py": "",
            f"{package}/models/plain/__init__.py": "",
            f"{package}/models/plain/denoising.py": RECORDING.format(extra="", record=""),
            f"{package}/models/grouped/__init__.py": "",
            f"{package}/models/grouped/denoising.py": RECORDING.format(
                extra=", group_detr=1", record=", group_detr=group_detr"
            ),
            f"{package}/models/paqi/__init__.py": "",
            f"{package}/models/paqi/denoising.py": RECORDING.format(
                extra=", batch_queries_num=None, num_heads=8, temperature=0.5",
                record=", batch_queries_num=batch_queries_num, num_heads=num_heads, temperature=temperature",
            ),
            f"{package}/models/needy/__init__.py": "",
            f"{package}/models/needy/denoising.py": RECORDING.format(extra=", *, mystery", record=""),
            f"{package}/models/broken/__init__.py": "",
            f"{package}/models/broken/denoising.py": "raise RuntimeError('no torchvision::nms here')\n" + DEF,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(libreyolo_peers, "PACKAGE", package)
    yield package
    for name in [m for m in sys.modules if m.split(".")[0] == package]:
        del sys.modules[name]


def test_fake_libreyolo_names_and_variants(fake_libreyolo):
    loaders = libreyolo_peers.builtin_implementations()
    assert sorted(loaders) == [
        "libreyolo-broken",
        "libreyolo-grouped",
        "libreyolo-grouped-group_detr3",
        "libreyolo-needy",
        "libreyolo-paqi",
        "libreyolo-plain",
    ]


def _set_outputs(module_name: str, outputs) -> list:
    import importlib

    module = importlib.import_module(module_name)
    module.OUTPUTS = outputs
    module.CALLS.clear()
    return module.CALLS


def test_fake_libreyolo_plain_builder_gets_upstream_arguments_and_outputs_pass_through(fake_libreyolo):
    impl = load_implementation("libreyolo-plain")
    query_class, query_bbox, mask = torch.randn(2, 4, 3), torch.randn(2, 4, 4), torch.zeros(5, 5, dtype=torch.bool)
    meta = {"dn_positive_idx": (torch.tensor([0]),), "dn_num_group": 1, "dn_num_split": [4, 1], "extra_key": 7}
    calls = _set_outputs(f"{fake_libreyolo}.models.plain.denoising", (query_class, query_bbox, mask, meta))
    targets, embed = (
        [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}],
        torch.nn.Embedding(4, 3),
    )
    out = impl(targets, 3, 1, embed, 9, 0.25, 0.75)
    assert len(calls) == 1 and calls[0]["targets"] is targets and calls[0]["class_embed"] is embed
    assert {k: v for k, v in calls[0].items() if k not in ("targets", "class_embed")} == dict(
        num_classes=3, num_queries=1, num_denoising=9, label_noise_ratio=0.25, box_noise_scale=0.75
    )
    assert list(targets[0]) == ["labels", "boxes"]  # nothing renamed
    assert out[0] is query_class and out[1] is query_bbox and out[2] is mask and out[3] is meta
    assert not impl.accepts_noise and impl.not_comparable == {} and impl.extra["claims_rtdetr_semantics"]
    assert impl.version.startswith("libreyolo ")
    for passed in ((None, None, None, None), (None, None, None, meta), "not a tuple"):
        _set_outputs(f"{fake_libreyolo}.models.plain.denoising", passed)
        assert impl(targets, 3, 1, embed) == passed


def test_fake_libreyolo_group_detr_is_one_and_its_variant_is_not_comparable(fake_libreyolo):
    from dnspec.checks.suite import BY_NAME  # property names

    calls = _set_outputs(f"{fake_libreyolo}.models.grouped.denoising", (None, None, None, None))
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    plain = load_implementation("libreyolo-grouped")
    plain(targets, 3, 1, None)
    assert calls[-1]["group_detr"] == 1 and plain.not_comparable == {}
    assert "group_detr=1" in plain.description
    variant = load_implementation("libreyolo-grouped-group_detr3")
    variant(targets, 3, 1, None)
    assert calls[-1]["group_detr"] == 3
    assert not variant.extra["claims_rtdetr_semantics"]
    assert set(variant.not_comparable) <= set(BY_NAME), set(variant.not_comparable) - set(BY_NAME)
    assert {"inputs_untouched", "determinism", "bad_input"}.isdisjoint(variant.not_comparable)
    assert all("group_detr=3" in why and "\n" not in why for why in variant.not_comparable.values())


def test_fake_libreyolo_paqi_builder_gets_full_query_counts_and_one_mask(fake_libreyolo):
    impl = load_implementation("libreyolo-paqi")
    one = torch.tensor([[False, True, False], [True, False, False], [True, True, False]])
    meta = {"dn_positive_idx": (torch.tensor([0]), torch.tensor([0])), "dn_num_group": 1, "dn_num_split": [2, 1]}
    calls = _set_outputs(f"{fake_libreyolo}.models.paqi.denoising", (None, None, one.repeat(2, 1, 1), meta))
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}] * 2
    out = impl(targets, 3, 1, None, 5)
    assert calls[-1]["batch_queries_num"] == [1, 1] and calls[-1]["num_heads"] == 1
    assert calls[-1]["temperature"] == 0.5  # unknown, with a default: left as it is, and said
    assert (
        impl.extra["left_at_default"] == {"temperature": 0.5}
        and "temperature left at its default 0.5" in impl.description
    )
    assert out[2].shape == (3, 3) and torch.equal(out[2], one) and out[3] is meta
    different = one.repeat(2, 1, 1)
    different[1, 0, 2] = True
    _set_outputs(f"{fake_libreyolo}.models.paqi.denoising", (None, None, different, meta))
    with pytest.raises(ValueError, match=r"per-image attention masks differ \(copies \[1\]"):
        impl(targets, 3, 1, None, 5)


def test_fake_libreyolo_unusable_and_unimportable_builders_say_why(fake_libreyolo):
    with pytest.raises(
        SpecError, match="a parameter 'mystery' without a default, which the adapter does not know how to set"
    ):
        load_implementation("libreyolo-needy")
    with pytest.raises(
        SpecError, match=r"importing '.*broken.denoising' raised RuntimeError: no torchvision::nms here"
    ):
        load_implementation("libreyolo-broken")


def test_peer_specs_lists_installed_peers_even_when_they_fail_to_import(fake_libreyolo, monkeypatch):
    providers = (
        "dnspec.implementations.fast:builtin_implementations",
        "dnspec.implementations.adapters.libreyolo_peers:builtin_implementations",
        "dnspec.implementations.adapters.lightly_train_peer:builtin_implementations",
        "dnspec.implementations.adapters.not_written_yet:builtin_implementations",
    )
    monkeypatch.setattr(lightly_train_peer, "lightly_train_root", lambda: None)
    monkeypatch.setattr(lightly_train_peer, "PACKAGE", "surely_not_an_installed_package_dnspec")
    names = installed.peer_specs(providers)
    assert "libreyolo-broken" in names and "libreyolo-plain" in names  # listed, loadable or not
    assert not any(name.startswith(("lightly-train", "fast")) for name in names)  # absent peer; not a peer


def test_extra_parameters_reads_the_signature():
    def builder(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        group_detr=1,
        other=2,
        **kwargs,
    ):
        pass

    set_by_adapter, left, problems = libreyolo_peers.extra_parameters(builder)
    assert list(set_by_adapter) == ["group_detr"] and left == {"other": 2} and problems == []

    def renamed(targets, num_classes, num_queries, class_embed, num_denoising_queries=100):
        pass

    assert "no parameter 'num_denoising'" in libreyolo_peers.extra_parameters(renamed)[2]


def test_libreyolo_adapter_says_when_it_cannot_size_the_batch():
    def builder(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        batch_queries_num=None,
        num_heads=8,
    ):
        raise AssertionError("not reached")

    with pytest.raises(TypeError, match="the adapter's, not libreyolo's"):
        libreyolo_peers.adapt(builder)(object(), 3, 1, None)


def test_collapse_repeated_mask_passes_2d_masks_and_none():
    mask = torch.zeros(3, 3, dtype=torch.bool)
    assert libreyolo_peers.collapse_repeated_mask(mask) is mask
    assert libreyolo_peers.collapse_repeated_mask(None) is None
    with pytest.raises(ValueError, match="no copies"):
        libreyolo_peers.collapse_repeated_mask(torch.zeros(0, 3, 3, dtype=torch.bool))


class _Recorder:
    def __init__(self, outputs):
        self.outputs = outputs
        self.args = self.kwargs = None

    def __call__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        return self.outputs


def test_lightly_train_adapter_renames_nothing_and_passes_outputs():
    outputs = (torch.randn(1, 2, 3), torch.randn(1, 2, 4), torch.zeros(3, 3, dtype=torch.bool), {"dn_num_group": 1})
    fake = _Recorder(outputs)
    targets, embed = (
        [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}],
        torch.nn.Embedding(4, 3),
    )
    assert lightly_train_peer.adapt(fake)(targets, 3, 1, embed, 9, 0.25, 0.75) is outputs
    assert fake.args == (targets, 3, 1, embed)
    assert fake.kwargs == {"num_denoising": 9, "label_noise_ratio": 0.25, "box_noise_scale": 0.75}
    lightly_train_peer.adapt(fake)(targets, 3, 1, embed)
    assert fake.kwargs == {"num_denoising": 100, "label_noise_ratio": 0.5, "box_noise_scale": 1.0}


# --- (iii) the real peers, where installed ---------------------------------------------


@pytest.mark.parametrize("spec", PEER_PARAMS)
def test_every_discovered_adapter_loads(spec, loaded):
    import importlib

    impl = loaded(spec)
    module = importlib.import_module(impl.extra["module"])
    assert impl.extra["port"] is module.get_contrastive_denoising_training_group
    assert impl.fn.__wrapped_port__ is impl.extra["port"]
    assert not impl.accepts_noise and impl.name == spec
    distribution = "libreyolo" if spec.startswith("libreyolo-") else "lightly-train"
    assert impl.version == f"{distribution} {discovery.distribution_version(distribution)}"


@pytest.mark.skipif(not HAVE_LIBREYOLO, reason=NO_LIBREYOLO)
def test_libreyolo_builders_found_where_1_6_0_has_them():
    if discovery.distribution_version("libreyolo") != "1.6.0":
        pytest.skip(f"libreyolo {discovery.distribution_version('libreyolo')} is not 1.6.0")
    assert {
        m: f"libreyolo.models.{m}.denoising" for m in ("deim", "dfine", "domedetr", "gtr", "rtdetr")
    } == LIBREYOLO_BUILDERS
    assert "libreyolo-gtr-group_detr3" in builtin_loaders()


@pytest.mark.skipif(not HAVE_LIGHTLY_TRAIN, reason=NO_LIGHTLY_TRAIN)
def test_lightly_train_builder_found():
    assert LIGHTLY_TRAIN_BUILDERS.get("ltdetr") == "lightly_train._task_models.object_detection_components.denoising"


@pytest.mark.parametrize("spec", PEER_PARAMS)
def test_noise_free_output_matches_the_reference(spec, loaded):
    """label_noise_ratio 0 and box_noise_scale 0 (SMALL_SCALE where the peer cannot take
    0): on 30 ragged batches, classes, mask and dn_meta equal the reference's exactly and
    the boxes equal it (at SMALL_SCALE: decoded, within the noise's bound, each corner
    moving by at most 2 * scale * side / 2, plus the logit clamp's 1e-5)."""
    impl = loaded(spec)
    if not impl.extra["claims_rtdetr_semantics"]:
        pytest.skip(f"{spec} is not RT-DETR's layout by design (not_comparable: {sorted(impl.not_comparable)[:3]} ...)")
    generator = torch.Generator().manual_seed(6000)
    first = random_ragged_case(generator)
    scale = 0.0 if _takes_zero_box_noise(impl, first) else SMALL_SCALE
    if spec in RAISES_AT_ZERO_BOX_NOISE:
        assert scale > 0, f"{spec} now takes box_noise_scale 0: update RAISES_AT_ZERO_BOX_NOISE and the docstrings"
    elif spec == "libreyolo-rtdetr":
        assert scale == 0
    for batch in range(30):
        case = (first if batch == 0 else random_ragged_case(generator)).with_config(label_noise_ratio=0.0)
        embed = case.class_embed()
        ours = case.with_config(box_noise_scale=0.0).call(reference, class_embed=embed)
        theirs = case.with_config(box_noise_scale=scale).call(impl, class_embed=embed)
        where = f"{spec}, batch {batch}, box_noise_scale {scale}: {case!r}"
        assert theirs[0].dtype == ours[0].dtype and torch.equal(theirs[0], ours[0]), (
            f"{where}: input_query_class differs"
        )
        assert theirs[2].dtype == torch.bool and torch.equal(theirs[2], ours[2]), f"{where}: attn_mask differs"
        _assert_same_meta(ours[3], theirs[3], where)
        assert theirs[1].dtype == ours[1].dtype, where
        if scale == 0:
            assert torch.equal(theirs[1], ours[1]), f"{where}: input_query_bbox differs"
            continue
        decoded = theirs[1].double().sigmoid()
        gt = ours[1].double()  # box space at scale 0; zeros on padding rows
        bound = 2 * scale * gt[..., 2:].amax(-1, keepdim=True) + 2e-5
        error = (decoded - gt).abs()
        assert bool((error <= bound).all()), (
            f"{where}: boxes off by {float((error - bound).max()):.3g} beyond the bound"
        )


@pytest.mark.parametrize("spec", PEER_PARAMS)
def test_same_seed_gives_the_references_noise(spec, loaded):
    """With noise (box_noise_scale > 0), same torch.manual_seed, float32: bit-identical to
    the reference, and the global RNG left in the same state; for D-FINE's family, except
    the sides of crossed negatives (where the reference's side is the collapsed
    log(1e-5) and theirs is larger, see test_divergence_dfine_family_flips_crossed_sides)."""
    impl = loaded(spec)
    if not impl.extra["claims_rtdetr_semantics"]:
        pytest.skip(f"{spec} is not RT-DETR's layout by design")
    generator = torch.Generator().manual_seed(7000)
    flipped_somewhere = False
    for batch in range(30):
        case = random_ragged_case(generator)
        if case.box_noise_scale == 0:
            case = case.with_config(box_noise_scale=0.5 + batch / 30)
        embed = case.class_embed()
        theirs = case.call(impl, class_embed=embed)
        after_theirs = torch.rand(4)
        ours = case.call(reference, class_embed=embed)
        after_ours = torch.rand(4)
        where = f"{spec}, batch {batch}: {case!r}"
        assert torch.equal(after_ours, after_theirs), f"{where}: the global RNG advanced differently"
        assert torch.equal(theirs[0], ours[0]), f"{where}: input_query_class differs"
        assert torch.equal(theirs[2], ours[2]), f"{where}: attn_mask differs"
        _assert_same_meta(ours[3], theirs[3], where)
        differ = theirs[1] != ours[1]
        if spec not in FLIPS_NEGATIVE_SIDES:
            assert not bool(differ.any()), f"{where}: input_query_bbox differs at {differ.nonzero()[:5].tolist()}"
            continue
        assert not bool(differ[..., :2].any()), f"{where}: centres differ"
        assert bool((ours[1][differ] == COLLAPSED).all()), (
            f"{where}: a side differs that the reference did not collapse"
        )
        assert bool((theirs[1][differ] > COLLAPSED).all()), where
        flipped_somewhere |= bool(differ.any())
    if spec in FLIPS_NEGATIVE_SIDES:
        assert flipped_somewhere, f"{spec}: no crossed negative flipped in 30 batches"


# --- (iv) divergences from RT-DETR, as the adapters' docstrings describe them --------------


def _needs(spec: str):
    reason = NO_LIGHTLY_TRAIN if spec.startswith("lightly-train") else NO_LIBREYOLO
    present = HAVE_LIGHTLY_TRAIN if spec.startswith("lightly-train") else HAVE_LIBREYOLO
    return pytest.param(spec, id=spec, marks=pytest.mark.skipif(not present, reason=reason))


ALL_KNOWN = [
    "libreyolo-rtdetr",
    "libreyolo-dfine",
    "libreyolo-deim",
    "libreyolo-domedetr",
    "libreyolo-gtr",
    "lightly-train-ltdetr",
]


@pytest.mark.parametrize("spec", [_needs(s) for s in ALL_KNOWN])
def test_divergence_zero_box_noise_scale(spec, loaded):
    """RT-DETR returns box-space boxes at box_noise_scale 0; all but libreyolo-rtdetr
    assign their box output only under ``if box_noise_scale > 0`` and raise."""
    impl = loaded(spec)
    case = CdnCase(
        make_targets((3, 0, 2), seed=1, num_classes=5),
        num_classes=5,
        num_queries=4,
        num_denoising=12,
        label_noise_ratio=0.5,
        box_noise_scale=0.0,
    )
    if spec in RAISES_AT_ZERO_BOX_NOISE:
        with pytest.raises(UnboundLocalError, match="input_query_bbox_unact"):
            case.call(impl)
    else:
        theirs, ours = case.call(impl), case.call(reference)
        assert torch.equal(theirs[1], ours[1]) and torch.equal(theirs[0], ours[0])


@pytest.mark.parametrize("spec", [_needs(s) for s in ALL_KNOWN])
def test_divergence_all_empty_batch(spec, loaded):
    """Every image without boxes: RT-DETR returns four Nones."""
    impl = loaded(spec)
    case = CdnCase(
        make_targets((0, 0), seed=1, num_classes=5),
        num_classes=5,
        num_queries=3,
        num_denoising=12,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
    )
    out = case.call(impl)
    if spec == "libreyolo-rtdetr":
        assert out == (None, None, None, None)
        return
    empty_meta = {"dn_positive_idx": None, "dn_num_group": 0, "dn_num_split": [0, 3]}
    if spec in ("libreyolo-dfine", "libreyolo-deim"):
        assert out[:3] == (None, None, None) and out[3] == empty_meta
    elif spec == "libreyolo-domedetr":
        assert out[:2] == (None, None) and out[3] == empty_meta
        assert out[2].shape == (3, 3) and not bool(out[2].any())
    else:  # gtr, lightly-train: zero-width outputs (lightly-train PR #446: DDP ranks stay in step)
        assert out[0].shape == (2, 0, 8) and out[1].shape == (2, 0, 4)
        assert out[2].shape == (3, 3) and not bool(out[2].any())
        meta = dict(out[3])
        positive = meta.pop("dn_positive_idx")
        assert len(positive) == 2 and all(p.numel() == 0 and p.dtype == torch.int64 for p in positive)
        expected = {"dn_num_group": 0, "dn_num_split": [0, 3]}
        if spec == "libreyolo-gtr":
            expected["dn_group_detr"] = 1
        assert meta == expected
        with pytest.raises(UnboundLocalError):
            case.with_config(box_noise_scale=0.0).call(impl)


@pytest.mark.parametrize("spec", [_needs(s) for s in ALL_KNOWN])
def test_divergence_box_buffer_is_float32(spec, loaded):
    """float64 boxes come back float32 (the reference keeps float64); the class queries
    follow the embedding's dtype."""
    impl = loaded(spec)
    case = CdnCase(
        make_targets((3, 0, 2), seed=1, num_classes=5),
        num_classes=5,
        num_queries=4,
        num_denoising=12,
        label_noise_ratio=0.0,
        box_noise_scale=0.5,
    ).to(dtype=torch.float64)
    theirs = case.call(impl)
    assert theirs[1].dtype == torch.float32 and theirs[0].dtype == torch.float64
    assert case.call(reference)[1].dtype == torch.float64


@pytest.mark.parametrize("spec", [_needs(s) for s in ALL_KNOWN])
def test_divergence_empty_targets_list_raises_index_error(spec, loaded):
    with pytest.raises(IndexError):
        loaded(spec)([], 5, 3, torch.nn.Embedding(6, 4))


@pytest.mark.skipif(not HAVE_LIBREYOLO, reason=NO_LIBREYOLO)
def test_divergence_domedetr_raises_at_num_denoising_0(loaded):
    """D-FINE returns dn_meta None at num_denoising 0; Dome-DETR then reads
    dn_meta['dn_num_split'] (its decoder never calls it so)."""
    case = CdnCase(make_targets((2,), seed=1, num_classes=3), num_classes=3, num_queries=2, num_denoising=0)
    with pytest.raises(TypeError, match="not subscriptable"):
        case.call(loaded("libreyolo-domedetr"))
    assert case.call(loaded("libreyolo-dfine")) == (None, None, None, None)


@pytest.mark.parametrize("spec", [_needs(s) for s in sorted(FLIPS_NEGATIVE_SIDES)])
def test_divergence_dfine_family_flips_crossed_sides(spec, loaded):
    """``input_query_bbox[input_query_bbox < 0] *= -1``: a negative whose corners cross
    gets side |x2 - x1|, where RT-DETR's collapses to 1e-5. Rebuilt here from the same
    draw: the peer's boxes are RT-DETR's arithmetic with |side|."""
    boxes = torch.tensor([[0.5, 0.5, 0.1, 0.1], [0.3, 0.6, 0.05, 0.2], [0.7, 0.4, 0.2, 0.04]])
    case = CdnCase(
        ({"labels": torch.tensor([0, 1, 2]), "boxes": boxes},),
        num_classes=3,
        num_queries=2,
        num_denoising=60,
        label_noise_ratio=0.0,
        box_noise_scale=1.0,
        seed=11,
    )
    theirs = case.call(loaded(spec))[1]
    m, groups = 3, 20
    torch.manual_seed(case.seed)
    noise = draw_noise(1, 2 * m * groups, 3, 0.0, 1.0)
    gt = boxes.repeat(2 * groups, 1).unsqueeze(0)
    negative = torch.zeros(1, 2 * m, 1)
    negative[:, m:] = 1
    negative = negative.repeat(1, groups, 1)
    magnitude = (noise.box_magnitude + 1.0) * negative + noise.box_magnitude * (1 - negative)
    corners = box_cxcywh_to_xyxy(gt) + noise.box_sign * magnitude * torch.tile(gt[..., 2:] * 0.5, [1, 1, 2])
    cxcywh = box_xyxy_to_cxcywh(corners.clip(min=0.0, max=1.0))
    crossed = cxcywh < 0
    assert bool(crossed.any()), "no crossed corner in this draw"
    assert torch.equal(theirs, inverse_sigmoid(cxcywh.abs()))
    assert bool((case.call(reference)[1][crossed] == COLLAPSED).all())


@pytest.mark.skipif(not HAVE_LIBREYOLO, reason=NO_LIBREYOLO)
def test_gtr_group_detr3_is_rtdetr_with_3g_groups_and_3q_queries(loaded):
    """GTR's recipe (group_detr=3): the layout of RT-DETR with 3G groups and 3Q object
    queries (mask and positive indices equal that call's), but dn_num_group stays G and
    dn_meta says dn_group_detr 3."""
    impl = loaded("libreyolo-gtr-group_detr3")
    case = CdnCase(
        make_targets((3, 0, 2), seed=1, num_classes=5),
        num_classes=5,
        num_queries=4,
        num_denoising=12,
        label_noise_ratio=0.0,
        box_noise_scale=0.5,
    )
    theirs = case.call(impl)
    groups = 12 // 3
    ours = case.with_config(num_denoising=3 * groups * 3, num_queries=3 * 4).call(reference)
    assert theirs[0].shape == ours[0].shape == (3, 2 * 3 * groups * 3, 8)
    assert torch.equal(theirs[2], ours[2])
    assert theirs[3]["dn_num_split"] == ours[3]["dn_num_split"] == [72, 12]
    assert theirs[3]["dn_num_group"] == groups and ours[3]["dn_num_group"] == 3 * groups
    assert theirs[3]["dn_group_detr"] == 3
    for a, b in zip(theirs[3]["dn_positive_idx"], ours[3]["dn_positive_idx"], strict=True):
        assert torch.equal(a, b)
