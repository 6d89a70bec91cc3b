"""dnspec's validator: every kind of bad input is named (field, image, value); valid
inputs of every shape the strategies make pass; and validating keeps the reference
bit-identical to upstream, RNG state included.

The bad inputs here are written by hand, independently of dnspec.generation.error_inputs (whose
strategies are checked against the validator in test_error_inputs.py)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.contract.validation import CdnInputError, corner_tolerance, validate_cdn_inputs
from dnspec.generation.cases import CdnCase, make_targets
from dnspec.generation.error_inputs import ERROR_KINDS
from dnspec.generation.strategies import cdn_cases

NUM_CLASSES = 5


def valid_call():
    """[targets, num_classes, num_queries, class_embed, num_denoising, ratio, scale]:
    three images with 3, 0 and 2 boxes."""
    targets = [dict(t) for t in make_targets((3, 0, 2), seed=4, num_classes=NUM_CLASSES)]
    embed = torch.nn.Embedding(NUM_CLASSES + 1, 4, padding_idx=NUM_CLASSES)
    return [targets, NUM_CLASSES, 7, embed, 100, 0.5, 1.0]


def set_box(i, row, column, value):
    def mutate(args):
        args[0][i]["boxes"][row, column] = value

    return mutate


def set_label(i, row, value):
    def mutate(args):
        args[0][i]["labels"][row] = value

    return mutate


def set_entry(i, key, make):
    def mutate(args):
        args[0][i][key] = make(args[0][i][key])

    return mutate


def set_arg(position, value):
    def mutate(args):
        args[position] = value

    return mutate


def drop_key(i, key):
    def mutate(args):
        del args[0][i][key]

    return mutate


def move_to_meta(i, key):
    def mutate(args):
        args[0][i][key] = args[0][i][key].to("meta")

    return mutate


def embed_on_meta(args):
    args[3] = args[3].to("meta")


# kind -> [(mutation, field, image_index, text the message must contain), ...]
BAD_INPUTS = {
    "nan_box": [
        (set_box(2, 1, 0, math.nan), "boxes", 2, "targets[2]['boxes'][1]: non-finite value nan"),
        (set_box(0, 0, 3, math.nan), "boxes", 0, "targets[0]['boxes'][0]: non-finite value nan"),
    ],
    "inf_box": [
        (set_box(0, 2, 1, math.inf), "boxes", 0, "targets[0]['boxes'][2]: non-finite value inf"),
        (set_box(2, 0, 2, -math.inf), "boxes", 2, "non-finite value -inf"),
    ],
    "zero_width": [
        (set_box(2, 1, 2, 0.0), "boxes", 2, "targets[2]['boxes'][1]: width 0.0 <= 0"),
        (set_box(0, 1, 3, 0.0), "boxes", 0, "targets[0]['boxes'][1]: height 0.0 <= 0"),
    ],
    "negative_height": [
        (set_box(0, 1, 3, -0.1), "boxes", 0, "targets[0]['boxes'][1]: height -0.1 <= 0"),
        (set_box(2, 0, 2, -0.2), "boxes", 2, "width -0.2 <= 0"),
    ],
    "corner_outside": [
        (set_box(0, 0, 0, 0.99), "boxes", 0, "targets[0]['boxes'][0]: corner x2 = cx + w/2 ="),
        (set_box(2, 1, 1, 0.0), "boxes", 2, "targets[2]['boxes'][1]: corner y1 = cy - h/2 ="),
        (set_box(0, 1, 2, 1.5), "boxes", 0, "corner x1"),
    ],
    "int_boxes": [
        (
            set_entry(2, "boxes", lambda b: (b * 100).long()),
            "boxes",
            2,
            "targets[2]['boxes']: dtype torch.int64 is not a floating dtype",
        )
    ],
    "wrong_box_shape": [
        (set_entry(0, "boxes", lambda b: b[:, :3]), "boxes", 0, "targets[0]['boxes']: shape [3, 3], expected [n, 4]"),
        (set_entry(0, "boxes", lambda b: b[None]), "boxes", 0, "shape [1, 3, 4]"),
        (set_entry(1, "boxes", lambda b: b.reshape(-1)), "boxes", 1, "targets[1]['boxes']: shape [0], expected [n, 4]"),
    ],
    "length_mismatch": [
        (set_entry(2, "boxes", lambda b: b[:1]), "boxes", 2, "targets[2]: 2 labels but 1 boxes"),
        (set_entry(1, "labels", lambda labels: torch.tensor([0])), "boxes", 1, "targets[1]: 1 labels but 0 boxes"),
    ],
    "label_equals_num_classes": [
        (
            set_label(2, 1, NUM_CLASSES),
            "labels",
            2,
            f"targets[2]['labels'][1]: label {NUM_CLASSES} outside [0, num_classes={NUM_CLASSES}) (num_classes is the padding class",
        )
    ],
    "label_out_of_range": [
        (set_label(0, 2, 80), "labels", 0, "targets[0]['labels'][2]: label 80 outside [0, num_classes=5)")
    ],
    "negative_label": [(set_label(2, 0, -1), "labels", 2, "targets[2]['labels'][0]: label -1 outside")],
    "float_labels": [
        (
            set_entry(0, "labels", lambda labels: labels.float()),
            "labels",
            0,
            "targets[0]['labels']: dtype torch.float32 is not an integer dtype",
        ),
        (set_entry(0, "labels", lambda labels: labels > 0), "labels", 0, "dtype torch.bool"),
    ],
    "labels_not_1d": [
        (
            set_entry(2, "labels", lambda labels: labels[:, None]),
            "labels",
            2,
            "targets[2]['labels']: shape [2, 1], expected 1-D [n]",
        )
    ],
    "missing_key": [
        (drop_key(1, "boxes"), "boxes", 1, "targets[1]: missing key 'boxes'"),
        (drop_key(0, "labels"), "labels", 0, "targets[0]: missing key 'labels'"),
        (
            set_entry(2, "boxes", lambda b: b.tolist()),
            "boxes",
            2,
            "targets[2]['boxes']: expected a torch.Tensor, got list",
        ),
    ],
    "image_not_a_dict": [
        (
            lambda args: args[0].__setitem__(1, (args[0][1]["labels"], args[0][1]["boxes"])),
            "targets",
            1,
            "targets[1]: expected a dict with 'labels' and 'boxes', got tuple",
        )
    ],
    "targets_not_a_list": [
        (
            lambda args: args.__setitem__(0, args[0][0]),
            "targets",
            None,
            "targets: expected a list of dicts (one per image), got dict",
        ),
        (lambda args: args.__setitem__(0, args[0][0]["boxes"]), "targets", None, "got Tensor"),
    ],
    # the 'meta' device stands in for a second device, so this runs without a GPU
    "device_mismatch": [
        (move_to_meta(2, "labels"), "labels", 2, "targets[2]['labels']: on meta, but targets[0]['labels'] is on cpu"),
        (move_to_meta(0, "boxes"), "boxes", 0, "targets[0]['boxes']: on meta"),
        (embed_on_meta, "class_embed", None, "class_embed: weight on meta, targets on cpu"),
    ],
    "embed_too_small": [
        (
            set_arg(3, torch.nn.Embedding(NUM_CLASSES, 4)),
            "class_embed",
            None,
            "class_embed: 5 rows < num_classes + 1 = 6",
        ),
        (set_arg(3, lambda x: x), "class_embed", None, "expected an nn.Embedding"),
    ],
    "num_classes_not_positive": [
        (set_arg(1, 0), "num_classes", None, "num_classes: 0 < 1"),
        (set_arg(1, 5.0), "num_classes", None, "num_classes: must be an int, got float 5.0"),
    ],
    "negative_num_queries": [(set_arg(2, -1), "num_queries", None, "num_queries: -1 < 0")],
    "num_denoising_not_int": [
        (set_arg(4, 100.0), "num_denoising", None, "num_denoising: must be an int"),
        (set_arg(4, True), "num_denoising", None, "got bool True"),
    ],
    "ratio_out_of_range": [
        (set_arg(5, 1.5), "label_noise_ratio", None, "label_noise_ratio: 1.5 outside [0, 1]"),
        (set_arg(5, -0.1), "label_noise_ratio", None, "-0.1 outside"),
        (set_arg(5, math.nan), "label_noise_ratio", None, "nan outside"),
    ],
    "negative_scale": [
        (set_arg(6, -1.0), "box_noise_scale", None, "box_noise_scale: -1.0 is not a finite number >= 0")
    ],
    "scale_not_finite": [
        (set_arg(6, math.inf), "box_noise_scale", None, "box_noise_scale: inf is not a finite number"),
        (set_arg(6, math.nan), "box_noise_scale", None, "nan is not"),
    ],
}

CASES = [(kind, n) for kind, entries in BAD_INPUTS.items() for n in range(len(entries))]


def test_every_error_kind_has_a_hand_written_bad_input():
    assert set(BAD_INPUTS) == set(ERROR_KINDS)


@pytest.mark.parametrize("kind,n", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_validator_names_field_image_and_value(kind, n):
    mutate, field, image_index, text = BAD_INPUTS[kind][n]
    args = valid_call()
    validate_cdn_inputs(*args)  # valid before the one change
    mutate(args)
    with pytest.raises(CdnInputError) as raised:
        validate_cdn_inputs(*args)
    error = raised.value
    assert isinstance(error, ValueError)
    assert (error.field, error.image_index) == (field, image_index)
    assert text in str(error)
    if image_index is not None:
        assert str(error).startswith(f"targets[{image_index}]")
    else:
        assert str(error).startswith(field)


@pytest.mark.parametrize("kind,n", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_reference_raises_the_validators_error(kind, n):
    mutate, field, image_index, _ = BAD_INPUTS[kind][n]
    args = valid_call()
    mutate(args)
    with pytest.raises(CdnInputError) as raised:
        reference(*args)
    assert (raised.value.field, raised.value.image_index) == (field, image_index)


def test_error_attributes_carry_row_and_value():
    args = valid_call()
    args[0][2]["boxes"][1, 2] = 0.0
    args[0][0]["labels"][2] = 9  # image 0 comes first
    with pytest.raises(CdnInputError) as raised:
        validate_cdn_inputs(*args)
    assert (raised.value.field, raised.value.image_index, raised.value.row, raised.value.value) == ("labels", 0, 2, 9)
    args[0][0]["labels"][2] = 1
    with pytest.raises(CdnInputError) as raised:
        validate_cdn_inputs(*args)
    assert (raised.value.field, raised.value.image_index, raised.value.row, raised.value.value) == ("boxes", 2, 1, 0.0)
    assert str(raised.value).startswith("targets[2]['boxes'][1]: width 0.0 <= 0")


def test_bad_input_raises_even_when_num_denoising_turns_denoising_off():
    """validate=True checks before the num_denoising <= 0 early return (a broken target
    is reported whether or not this call uses it); validate=False keeps upstream's Nones."""
    args = valid_call()
    args[0][0]["boxes"][0, 0] = math.nan
    args[4] = 0
    with pytest.raises(CdnInputError):
        reference(*args)
    assert reference(*args, validate=False) == (None, None, None, None)


# --- valid inputs pass --------------------------------------------------------------------


def one_image(boxes, labels=None, dtype=torch.float32):
    boxes = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4).to(dtype)
    labels = torch.zeros(len(boxes), dtype=torch.int64) if labels is None else torch.tensor(labels)
    return {"labels": labels, "boxes": boxes}


EDGE_BATCHES = {
    "empty targets list": [],
    "all images empty": [one_image([]), one_image([])],
    "border boxes cx = w/2": [
        one_image([[0.05, 0.5, 0.1, 0.2], [0.95, 0.9, 0.1, 0.2], [0.3, 0.15, 0.6, 0.3], [0.35, 0.85, 0.7, 0.3]])
    ],
    "full-image box": [one_image([[0.5, 0.5, 1.0, 1.0]]), one_image([])],
    "tiny boxes 1e-4": [one_image([[5e-5, 5e-5, 1e-4, 1e-4], [1 - 5e-5, 0.5, 1e-4, 1e-4]])],
    "labels 0 and num_classes - 1": [one_image([[0.5, 0.5, 0.2, 0.2]] * 2, [0, NUM_CLASSES - 1])],
    "uint8 labels": [{"labels": torch.tensor([4], dtype=torch.uint8), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}],
    "int32 labels and float64 boxes": [
        {
            "labels": torch.tensor([1], dtype=torch.int32),
            "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]], dtype=torch.float64),
        }
    ],
    "tuple of images": (one_image([[0.5, 0.5, 0.2, 0.2]]),),
}


@pytest.mark.parametrize("name", EDGE_BATCHES)
def test_valid_edge_batches_pass(name):
    embed = torch.nn.Embedding(NUM_CLASSES + 1, 4, padding_idx=NUM_CLASSES)
    assert validate_cdn_inputs(EDGE_BATCHES[name], NUM_CLASSES, 0, embed, 0, 0.0, 0.0) is None
    reference(EDGE_BATCHES[name], NUM_CLASSES, 3, embed)


def test_border_boxes_in_every_dtype():
    """Corners computed from stored cx and w land within the dtype's tolerance of 0 and 1."""
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        sides = torch.linspace(1e-3, 1.0, 97, dtype=torch.float64)
        low = torch.stack([sides / 2, sides / 2, sides, sides], 1)
        high = torch.stack([1 - sides / 2, 1 - sides / 2, sides, sides], 1)
        image = {"labels": torch.zeros(2 * len(sides), dtype=torch.int64), "boxes": torch.cat([low, high]).to(dtype)}
        validate_cdn_inputs([image], 1, 0, torch.nn.Embedding(2, 2))


def test_corner_tolerance_bounds():
    assert corner_tolerance(torch.float32) == corner_tolerance(torch.float64) == 1e-6
    embed = torch.nn.Embedding(2, 2)
    inside = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.75 + 5e-7, 0.5, 0.5, 0.5]], dtype=torch.float64)}
    outside = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.75 + 3e-6, 0.5, 0.5, 0.5]], dtype=torch.float64)}
    validate_cdn_inputs([inside], 1, 0, embed)
    with pytest.raises(CdnInputError, match="corner x2"):
        validate_cdn_inputs([outside], 1, 0, embed)


def test_small_integer_labels_are_compared_without_wrapping():
    """A uint8 label compared with num_classes = 300 must not wrap 300 to 44."""
    embed = torch.nn.Embedding(301, 2)
    image = {"labels": torch.tensor([200], dtype=torch.uint8), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    validate_cdn_inputs([image], 300, 0, embed)
    image["labels"] = torch.tensor([50], dtype=torch.int8)
    validate_cdn_inputs([image], 300, 0, embed)
    with pytest.raises(CdnInputError, match="label 50 outside"):
        validate_cdn_inputs([image], 40, 0, torch.nn.Embedding(41, 2))


def test_any_module_with_a_weight_is_a_class_embed():
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.Embedding(NUM_CLASSES + 1, 4)
            self.weight = self.inner.weight

        def forward(self, x):
            return self.inner(x)

    args = valid_call()
    args[3] = Wrapped()
    validate_cdn_inputs(*args)


@settings(max_examples=40)
@given(case=cdn_cases(), dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
def test_generated_valid_cases_pass(case, dtype):
    case = case.to(dtype=dtype)
    validate_cdn_inputs(*case.args())


# --- bit-identity with upstream -----------------------------------------------------------


def _outputs_equal(a, b) -> bool:
    if a[0] is None or b[0] is None:
        return a == b
    return (
        torch.equal(a[0], b[0])
        and torch.equal(a[1], b[1])
        and torch.equal(a[2], b[2])
        and a[3]["dn_num_group"] == b[3]["dn_num_group"]
        and a[3]["dn_num_split"] == b[3]["dn_num_split"]
        and all(torch.equal(x, y) for x, y in zip(a[3]["dn_positive_idx"], b[3]["dn_positive_idx"], strict=True))
    )


@settings(max_examples=40)
@given(case=cdn_cases())
def test_validation_keeps_outputs_and_rng_state(case):
    """A seeded call with validate=True equals one with validate=False, and leaves the
    global RNG (and a passed generator) in the same state."""
    checked = case.call(reference, validate=True)
    state_checked = torch.get_rng_state()
    unchecked = case.call(reference, validate=False)
    assert _outputs_equal(checked, unchecked)
    assert torch.equal(state_checked, torch.get_rng_state())

    generators = [torch.Generator().manual_seed(case.seed) for _ in range(2)]
    a = reference(*case.args(), generator=generators[0], validate=True)
    b = reference(*case.args(), generator=generators[1], validate=False)
    assert _outputs_equal(a, b)
    assert torch.equal(generators[0].get_state(), generators[1].get_state())


def test_validation_leaves_inputs_untouched():
    case = CdnCase(make_targets((4, 1), seed=2, num_classes=3), num_classes=3, num_queries=2)
    args = case.args()
    before = [{k: v.clone() for k, v in t.items()} for t in args[0]]
    validate_cdn_inputs(*args)
    for t, b in zip(args[0], before, strict=True):
        assert all(torch.equal(t[k], b[k]) for k in b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_device_mismatch_with_a_real_gpu():
    args = valid_call()
    args[0][2]["boxes"] = args[0][2]["boxes"].cuda()
    with pytest.raises(CdnInputError, match=r"targets\[2\]\['boxes'\]: on cuda"):
        validate_cdn_inputs(*args)
