"""The peer adapters: discovery of transformers' ports, bit-identity of each port (through
its adapter) with the reference, and that the adapters rename and nothing else.

The ultralytics tests that need the package skip with a reason when it is absent (it is
kept out of the default venv; ``ci/peers.sh`` installs it with the other peers and runs them).
The convention mapping of both adapters is also checked against recording fakes, which
needs neither package.
"""

import importlib
import subprocess
import sys
import textwrap

import pytest
import torch

from dnspec.contract.layout import CdnLayout
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.generation.cases import CdnCase, make_targets, random_ragged_case
from dnspec.implementations.adapters import transformers_peers, ultralytics_peer
from dnspec.implementations.specs import SpecError, builtin_loaders, load_implementation

HAVE_TRANSFORMERS = transformers_peers.transformers_root() is not None
NO_TRANSFORMERS = "transformers is not installed (pip install 'dnspec[peers]')"
try:  # loading imports ultralytics where it is installed (about a second), else fails at once
    ULTRALYTICS = load_implementation("ultralytics")
    NO_ULTRALYTICS = ""
except SpecError as exc:
    ULTRALYTICS = None
    NO_ULTRALYTICS = str(exc).split("; install")[0] + " (bash ci/peers.sh installs it and runs these tests)"

PORTS = transformers_peers.discover_ports()


def _assert_same_outputs(ours, theirs, where: str) -> None:
    if ours[0] is None:
        assert theirs == (None, None, None, None), where
        return
    for i, name in enumerate(("input_query_class", "input_query_bbox", "attn_mask")):
        assert ours[i].dtype == theirs[i].dtype, f"{where}: {name} dtype {theirs[i].dtype} vs {ours[i].dtype}"
        assert torch.equal(ours[i], theirs[i]), f"{where}: {name} differs"
    assert set(theirs[3]) == set(ours[3]), where
    assert theirs[3]["dn_num_group"] == ours[3]["dn_num_group"], where
    assert theirs[3]["dn_num_split"] == ours[3]["dn_num_split"], where
    assert isinstance(theirs[3]["dn_positive_idx"], tuple), where
    assert len(theirs[3]["dn_positive_idx"]) == len(ours[3]["dn_positive_idx"]), where
    for a, b in zip(ours[3]["dn_positive_idx"], theirs[3]["dn_positive_idx"], strict=True):
        assert torch.equal(a, b), f"{where}: dn_positive_idx differs"


# --- (i) every discovered transformers port is the reference, bit for bit ---------------


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason=NO_TRANSFORMERS)
@pytest.mark.parametrize("model", sorted(PORTS) or ["rt_detr"])
def test_transformers_port_bit_identical_to_reference(model):
    """50 random ragged float32 batches, same torch.manual_seed: all four outputs equal,
    and the global RNG is left in the same state."""
    impl = load_implementation(f"transformers-{model}")
    assert not impl.accepts_noise
    generator = torch.Generator().manual_seed(4000)
    for batch in range(50):
        case = random_ragged_case(generator)
        embed = case.class_embed()
        theirs = case.call(impl, class_embed=embed)
        after_theirs = torch.rand(4)
        ours = case.call(reference, class_embed=embed)
        after_ours = torch.rand(4)
        _assert_same_outputs(ours, theirs, f"transformers-{model}, batch {batch}: {case!r}")
        assert torch.equal(after_ours, after_theirs), f"batch {batch}: the global RNG advanced differently"


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason=NO_TRANSFORMERS)
def test_transformers_box_buffer_stays_float32_for_float64_input():
    """The port's box buffer takes the default dtype: float64 boxes come back float32.
    The adapter passes that through (the reference keeps float64)."""
    impl = load_implementation("transformers-rt_detr")
    case = CdnCase(make_targets((3, 0, 2), seed=1, num_classes=5), num_classes=5, num_queries=4, num_denoising=12)
    case = case.to(dtype=torch.float64).with_config(label_noise_ratio=0.0, box_noise_scale=0.0)
    theirs = case.call(impl)
    ours = case.call(reference)
    assert theirs[1].dtype == torch.float32 and ours[1].dtype == torch.float64
    assert theirs[0].dtype == torch.float64  # the class queries follow the embedding
    assert torch.equal(theirs[1], ours[1].float())


# --- (ii) discovery --------------------------------------------------------------------


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason=NO_TRANSFORMERS)
def test_discovery_finds_rt_detr_and_only_modules_with_the_function():
    assert PORTS.get("rt_detr") == "transformers.models.rt_detr.modeling_rt_detr"
    for module_name in PORTS.values():
        assert module_name.startswith("transformers.models.") and ".modeling_" in module_name
        assert callable(importlib.import_module(module_name).get_contrastive_denoising_training_group)
    root = transformers_peers.transformers_root()
    detr = root / "models" / "detr" / "modeling_detr.py"
    if detr.exists():
        assert "transformers.models.detr.modeling_detr" not in PORTS.values()
    names = set(builtin_loaders())
    assert {f"transformers-{model}" for model in PORTS} <= names


def test_discovery_reads_files_and_skips_mentions_modular_files_and_lookalikes(tmp_path):
    """Only top-level ``def get_contrastive_denoising_training_group(`` in a modeling_*.py."""
    files = {
        "models/alpha/modeling_alpha.py": "import torch\n\ndef get_contrastive_denoising_training_group(targets):\n    pass\n",
        "models/beta/modeling_beta.py": "from ..alpha.modeling_alpha import get_contrastive_denoising_training_group  # reused\n",
        "models/gamma/modular_gamma.py": "def get_contrastive_denoising_training_group(targets):\n    pass\n",
        "models/delta/modeling_delta.py": "def get_contrastive_denoising_training_group_v2(targets):\n    pass\n",
        "models/eps/modeling_eps.py": "class A:\n    def get_contrastive_denoising_training_group(self):\n        pass\n",
        "models/zeta/modeling_zeta_extra.py": "x = 1\n\ndef get_contrastive_denoising_training_group(\n    targets,\n):\n    pass\n",
    }
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = transformers_peers.discover_ports(tmp_path, package="fakepkg")
    assert found == {
        "alpha": "fakepkg.models.alpha.modeling_alpha",
        "zeta_extra": "fakepkg.models.zeta.modeling_zeta_extra",
    }


def test_discovery_and_name_listing_import_nothing_of_transformers():
    code = textwrap.dedent(
        """
        import sys
        from dnspec.implementations.adapters.transformers_peers import discover_ports
        from dnspec.implementations.specs import builtin_names
        discover_ports(); builtin_names()
        print(sorted(m for m in sys.modules if m == "transformers" or m.startswith("transformers.")))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_transformers_the_names_say_what_to_install(monkeypatch):
    monkeypatch.setattr(transformers_peers, "transformers_root", lambda: None)
    loaders = transformers_peers.builtin_implementations()
    assert "transformers-rt_detr" in loaders
    for load in loaders.values():
        with pytest.raises(SpecError, match=r"install transformers \(pip install 'dnspec\[peers\]'\)"):
            load()


def test_transformers_installed_without_any_port_says_so(monkeypatch, tmp_path):
    (tmp_path / "models").mkdir()
    monkeypatch.setattr(transformers_peers, "transformers_root", lambda: tmp_path)
    loaders = transformers_peers.builtin_implementations()
    assert list(loaders) == ["transformers-rt_detr"]
    with pytest.raises(SpecError, match="has no model defining get_contrastive_denoising_training_group"):
        loaders["transformers-rt_detr"]()


# --- (iii) the adapters rename and do nothing else --------------------------------------


class _Recorder:
    """A fake peer: records its arguments and returns prepared outputs."""

    def __init__(self, outputs):
        self.outputs = outputs
        self.args = self.kwargs = None

    def __call__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        return self.outputs


def _two_images():
    return [
        {
            "labels": torch.tensor([2, 0]),
            "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.2]]),
            "image_id": 7,
        },
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
    ]


def test_transformers_adapter_renames_inputs_and_converts_the_mask_exactly():
    inf = -torch.inf
    float_mask = torch.tensor([[0.0, inf, 0.0], [inf, 0.0, 0.0], [inf, inf, 0.0]])
    query_class, query_bbox = torch.randn(2, 2, 3), torch.randn(2, 2, 4)
    meta = {
        "dn_positive_idx": (torch.tensor([0]), torch.tensor([], dtype=torch.int64)),
        "dn_num_group": 1,
        "dn_num_split": [2, 1],
    }
    port = _Recorder((query_class, query_bbox, float_mask, meta))
    targets, embed = _two_images(), torch.nn.Embedding(4, 3, padding_idx=3)
    out = transformers_peers.adapt(port)(targets, 3, 1, embed, 9, 0.25, 0.75)

    sent, num_classes, num_queries, class_embed = port.args
    assert (num_classes, num_queries, class_embed) == (3, 1, embed)
    assert port.kwargs == {"num_denoising_queries": 9, "label_noise_ratio": 0.25, "box_noise_scale": 0.75}
    assert [list(t) for t in sent] == [["class_labels", "boxes", "image_id"], ["class_labels", "boxes"]]
    for mine, theirs in zip(targets, sent, strict=True):
        assert theirs["class_labels"] is mine["labels"] and theirs["boxes"] is mine["boxes"]
    assert "labels" in targets[0]  # the caller's dicts are not renamed in place

    assert out[0] is query_class and out[1] is query_bbox and out[3] is meta
    assert out[2].dtype == torch.bool
    assert torch.equal(out[2], float_mask == -torch.inf)


def test_transformers_adapter_passes_none_and_refuses_masks_it_cannot_map():
    assert transformers_peers.adapt(_Recorder((None, None, None, None)))(_two_images(), 3, 1, None) == (None,) * 4
    bool_mask = torch.tensor([[False, True]])
    assert transformers_peers.additive_mask_to_bool(bool_mask) is bool_mask
    with pytest.raises(ValueError, match="other than 0 and -inf"):
        transformers_peers.additive_mask_to_bool(torch.tensor([[0.0, -1e9]]))


def test_ultralytics_adapter_builds_its_batch_and_renames_meta_only():
    dn_pos_idx = [torch.tensor([0, 1, 4, 5]), torch.tensor([], dtype=torch.int64)]
    dn_gt_idx = [torch.tensor([0, 1]), torch.tensor([], dtype=torch.int64)]
    mask = torch.zeros(9, 9, dtype=torch.bool)
    query_class, query_bbox = torch.randn(2, 8, 3), torch.randn(2, 8, 4)
    meta = {"dn_pos_idx": dn_pos_idx, "dn_gt_idx": dn_gt_idx, "dn_num_group": 2, "dn_num_split": [8, 1]}
    fake = _Recorder((query_class, query_bbox, mask, meta))
    targets = _two_images() + [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.4, 0.6, 0.2, 0.2]])}]
    embed = torch.nn.Embedding(4, 3, padding_idx=3)
    out = ultralytics_peer.adapt(fake)(targets, 3, 1, embed, 9, 0.25, 0.75)

    batch, num_classes, num_queries, class_embed = fake.args
    assert (num_classes, num_queries) == (3, 1) and class_embed is embed.weight
    assert fake.kwargs == {"num_dn": 9, "cls_noise_ratio": 0.25, "box_noise_scale": 0.75, "training": True}
    assert batch["gt_groups"] == [2, 0, 1]
    assert torch.equal(batch["cls"], torch.tensor([2, 0, 1]))
    assert torch.equal(batch["bboxes"], torch.cat([t["boxes"] for t in targets]))
    assert batch["batch_idx"].dtype == torch.int64 and batch["batch_idx"].tolist() == [0, 0, 2]

    assert out[0] is query_class and out[1] is query_bbox and out[2] is mask
    assert list(out[3]) == ["dn_positive_idx", "dn_gt_idx", "dn_num_group", "dn_num_split"]
    assert isinstance(out[3]["dn_positive_idx"], tuple)
    assert all(a is b for a, b in zip(out[3]["dn_positive_idx"], dn_pos_idx, strict=True))
    assert out[3]["dn_gt_idx"] is dn_gt_idx and out[3]["dn_num_group"] == 2 and out[3]["dn_num_split"] == [8, 1]
    assert ultralytics_peer.adapt(_Recorder((None,) * 4))(targets, 3, 1, embed) == (None,) * 4


def test_ultralytics_adapter_says_when_it_cannot_flatten_targets():
    with pytest.raises(TypeError, match="the adapter's, not ultralytics'"):
        ultralytics_peer.to_ultralytics_batch([{"class_labels": torch.tensor([1])}])
    assert ultralytics_peer.to_ultralytics_batch([])["gt_groups"] == []


# --- (iv) ultralytics, for real where installed -----------------------------------------


@pytest.mark.skipif(ULTRALYTICS is not None, reason="ultralytics is installed here")
def test_ultralytics_absent_names_the_package_to_install():
    with pytest.raises(
        SpecError, match=r"cannot load SPEC 'ultralytics': .*install ultralytics \(pip install ultralytics"
    ):
        load_implementation("ultralytics")


needs_ultralytics = pytest.mark.skipif(ULTRALYTICS is None, reason=NO_ULTRALYTICS)


@pytest.fixture(scope="module")
def ultralytics_impl():
    return ULTRALYTICS


@needs_ultralytics
def test_ultralytics_loads_the_real_function(ultralytics_impl):
    import ultralytics
    from ultralytics.models.utils import ops

    assert ultralytics_impl.version == f"ultralytics {ultralytics.__version__}"
    assert ultralytics_impl.extra["port"] is ops.get_cdn_group
    assert not ultralytics_impl.accepts_noise


@needs_ultralytics
def test_ultralytics_noise_free_equals_the_reference_when_max_gt_fits(ultralytics_impl):
    """Without noise, in float32, with max_gt <= num_denoising and a zero padding row,
    ultralytics' layout is RT-DETR's: the adapter's mapping is complete."""
    generator = torch.Generator().manual_seed(5000)
    checked = 0
    while checked < 30:
        case = random_ragged_case(generator).with_config(label_noise_ratio=0.0, box_noise_scale=0.0)
        if max(case.counts) > case.num_denoising:
            continue
        embed = case.class_embed()
        ours, theirs = case.call(reference, class_embed=embed), case.call(ultralytics_impl, class_embed=embed)
        assert set(theirs[3]) - set(ours[3]) == {"dn_gt_idx"}
        theirs = theirs[:3] + ({k: v for k, v in theirs[3].items() if k != "dn_gt_idx"},)
        _assert_same_outputs(ours, theirs, f"ultralytics: {case!r}")
        checked += 1


@needs_ultralytics
def test_ultralytics_negatives_land_on_the_contracts_negative_rows(ultralytics_impl):
    """With G >= 2 groups, the rows with negative-sized noise (1 <= |u| < 2) are the
    contract's [(2g+1)m, (2g+2)m) and dn_positive_idx names the others (ultralytics
    8.4.170 and before put all negatives in the second half of the dn block instead)."""
    boxes = torch.tensor([[0.5, 0.5, 0.1, 0.1], [0.4, 0.6, 0.1, 0.12], [0.55, 0.45, 0.08, 0.1]])
    case = CdnCase(
        ({"labels": torch.tensor([0, 1, 2]), "boxes": boxes}, {"labels": torch.tensor([1]), "boxes": boxes[:1]}),
        num_classes=3,
        num_queries=2,
        num_denoising=9,
        label_noise_ratio=0.0,
        box_noise_scale=1.0,
        seed=1,
    )
    query_bbox = case.call(ultralytics_impl)[1].double()
    layout = CdnLayout(case.counts, 9, 2)
    assert layout.num_groups == 3
    gt = torch.stack([boxes, torch.cat([boxes[:1], torch.zeros(2, 4)])]).double()[:, layout.row_slot()]
    cxcy, wh = query_bbox.sigmoid()[..., :2], query_bbox.sigmoid()[..., 2:]
    corners = torch.cat([cxcy - wh / 2, cxcy + wh / 2], -1)
    gt_corners = torch.cat([gt[..., :2] - gt[..., 2:] / 2, gt[..., :2] + gt[..., 2:] / 2], -1)
    u = ((corners - gt_corners).abs() / (gt[..., 2:].repeat(1, 1, 2) / 2).clamp(min=1e-9)).amax(-1)
    assert bool((u[layout.negative_rows()] >= 1 - 1e-3).all()), u
    assert bool((u[layout.positive_rows()] < 1).all()), u
    for got, expected in zip(case.call(ultralytics_impl)[3]["dn_positive_idx"], layout.positive_idx(), strict=True):
        assert torch.equal(got, expected)


# Documented divergences (README, peers section): these pin ultralytics' behaviour so the
# prose is checked; when one starts failing, ultralytics changed and the README is stale.


@needs_ultralytics
def test_divergence_ultralytics_subsamples_images_above_num_denoising(ultralytics_impl):
    targets = make_targets((7, 2), seed=3, num_classes=5)
    case = CdnCase(targets, num_classes=5, num_queries=3, num_denoising=5, label_noise_ratio=0.0, box_noise_scale=0.0)
    theirs, layout = case.call(ultralytics_impl), CdnLayout(case.counts, 5, 3)
    assert layout.dn_num_split == [14, 3]
    assert theirs[3]["dn_num_split"] == [10, 3] and theirs[0].shape[1] == 10
    assert [len(idx) for idx in theirs[3]["dn_positive_idx"]] == [5, 2]
    assert [len(idx) for idx in theirs[3]["dn_gt_idx"]] == [5, 2]


@needs_ultralytics
def test_divergence_ultralytics_padding_rows_and_logit_clamp(ultralytics_impl):
    case = CdnCase(
        (
            {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 1.0, 1.0]])},
            {"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.4, 0.2, 0.3]])},
        ),
        num_classes=3,
        num_queries=0,
        num_denoising=20,
        label_noise_ratio=0.0,
        box_noise_scale=1.0,
    )
    theirs, ours = case.call(ultralytics_impl), case.call(reference)
    padding = ~CdnLayout(case.counts, 20, 0).real_rows()
    assert torch.equal(theirs[1][padding], torch.zeros_like(theirs[1][padding]))
    assert torch.allclose(ours[1][padding], torch.tensor(-11.512925))
    assert theirs[1].min() < -13.8 and ours[1].min() > -11.52  # torch.logit(eps=1e-6) vs inverse_sigmoid(eps=1e-5)


@needs_ultralytics
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_divergence_ultralytics_raises_on_non_float32(ultralytics_impl, dtype):
    case = CdnCase(make_targets((2,), seed=1, num_classes=3), num_classes=3, num_queries=1, num_denoising=4).to(
        dtype=dtype
    )
    with pytest.raises(RuntimeError, match="Index put requires the source and destination dtypes match"):
        case.call(ultralytics_impl)
