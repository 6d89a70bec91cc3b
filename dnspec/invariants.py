"""The contract of a CDN builder, one check per invariant, for any implementation.

Each ``check_*`` function calls the implementation on a :class:`~dnspec.cases.CdnCase`
and raises :class:`PropertyViolation` (an AssertionError) with a message naming the
first offending row or value. The expected values come from :mod:`dnspec.layout` (the
closed-form oracles), never from the reference's code, except in the differential
checks whose point is to compare with it. The pytest suite and ``dnspec verify`` both
run these functions through :mod:`dnspec.suite`; nothing else holds an invariant.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from dnspec.boxes import inverse_sigmoid
from dnspec.calling import call_implementation
from dnspec.decode import corners, decode_boxes, expects_logit_space, recover_labels
from dnspec.layout import CdnLayout
from dnspec.noise import draw_noise
from dnspec.tolerances import decoded_box_tolerance, tolerance_for

# sigmoid(inverse_sigmoid(0)) = 1e-5: the width or height a crossed box collapses to
COLLAPSED_SIDE = 2e-5


class PropertyViolation(AssertionError):
    """The implementation's output breaks an invariant."""


def _fail(message: str):
    raise PropertyViolation(message)


def outputs_of(impl, case, **kwargs):
    """Call ``impl`` on ``case`` and return its four outputs, checking only that there
    are four (anything else is a structure violation)."""
    outputs = call_implementation(impl, case, **kwargs)
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        _fail(f"returned {_describe(outputs)}; expected a tuple of 4 outputs")
    expected_device = torch.device(case.device).type
    for name, value in zip(("input_query_class", "input_query_bbox", "attn_mask"), outputs[:3]):
        if isinstance(value, torch.Tensor) and value.device.type != expected_device:
            _fail(f"{name} is on {value.device}, but the inputs are on {case.device}")
    return tuple(outputs)


def _describe(value) -> str:
    """A one-line description by type and shape (never a multi-line tensor repr)."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_describe(v) if isinstance(v, torch.Tensor) else type(v).__name__ for v in value[:6])
        return f"{len(value)} outputs ({inner}{', ...' if len(value) > 6 else ''})"
    return type(value).__name__


def layout_of(case) -> CdnLayout:
    return CdnLayout.for_targets(case.targets, case.num_denoising, case.num_queries)


def gt_rows(case, layout: CdnLayout):
    """Ground truth seen by each dn row, from the layout: labels int64 [bs, N] (padding
    rows: num_classes) and boxes float64 [bs, N, 4] (padding rows: zeros)."""
    bs, m = layout.batch_size, layout.max_gt
    labels = torch.full((bs, m), case.num_classes, dtype=torch.int64)
    boxes = torch.zeros((bs, m, 4), dtype=torch.float64)
    for i, t in enumerate(case.targets):
        labels[i, : len(t["labels"])] = t["labels"].cpu()
        boxes[i, : len(t["boxes"])] = t["boxes"].cpu().to(torch.float64)
    slot = layout.row_slot()
    return labels[:, slot], boxes[:, slot]


# --- 1. structure ---------------------------------------------------------------------


def check_structure(impl, case):
    """Four outputs; (None,)*4 exactly when num_denoising <= 0 or no image has a box;
    otherwise shapes [bs,N,D], [bs,N,4], [N+Q,N+Q], a bool mask, class queries in the
    embedding's dtype and boxes in the boxes' dtype, all on the inputs' device;
    dn_num_split == [N, Q] and dn_num_group == max(1, num_denoising // max_gt)."""
    outputs = outputs_of(impl, case)
    layout = layout_of(case)
    if not layout.produces_output:
        if any(o is not None for o in outputs):
            _fail(
                f"expected (None, None, None, None) (num_denoising={case.num_denoising}, "
                f"box counts {case.counts}); got {tuple(type(o).__name__ for o in outputs)}"
            )
        return
    query_class, query_bbox, attn_mask, meta = outputs
    n, q, bs, d = layout.num_dn_rows, case.num_queries, case.batch_size, case.embed_dim
    expected = {
        "input_query_class": (query_class, (bs, n, d), case.dtype),
        "input_query_bbox": (query_bbox, (bs, n, 4), case.dtype),
        "attn_mask": (attn_mask, (n + q, n + q), torch.bool),
    }
    for name, (value, shape, dtype) in expected.items():
        if not isinstance(value, torch.Tensor):
            _fail(f"{name} is {type(value).__name__}, expected a tensor")
        if tuple(value.shape) != shape:
            _fail(f"{name} has shape {list(value.shape)}, expected {list(shape)} (N={n}, Q={q}, bs={bs}, D={d})")
        if value.dtype != dtype:
            _fail(f"{name} has dtype {value.dtype}, expected {dtype}")
        if value.device.type != torch.device(case.device).type:
            _fail(f"{name} is on {value.device}, but the inputs are on {case.device}")
    if not isinstance(meta, dict):
        _fail(f"dn_meta is {type(meta).__name__}, expected a dict")
    missing = {"dn_positive_idx", "dn_num_group", "dn_num_split"} - set(meta)
    if missing:
        _fail(f"dn_meta lacks {sorted(missing)}; has {sorted(meta)}")
    if list(meta["dn_num_split"]) != layout.dn_num_split:
        _fail(f"dn_num_split is {meta['dn_num_split']}, expected [N, Q] = {layout.dn_num_split}")
    if meta["dn_num_group"] != layout.num_groups:
        _fail(
            f"dn_num_group is {meta['dn_num_group']}, expected max(1, {case.num_denoising} // {layout.max_gt}) "
            f"= {layout.num_groups}"
        )


def _produced(impl, case, **kwargs):
    """Outputs of a case that must produce some (structure is its own property)."""
    outputs = outputs_of(impl, case, **kwargs)
    if outputs[0] is None:
        _fail("returned None outputs for a batch with boxes and num_denoising > 0")
    return outputs


# --- 2. attention mask ----------------------------------------------------------------


def check_attention_mask(impl, case):
    """The mask equals the layout oracle exactly: object queries (rows >= N) see no dn
    row; a dn row sees every object query and the 2*max_gt rows of its own group only."""
    layout = layout_of(case)
    if not layout.produces_output:
        return
    attn_mask = _produced(impl, case)[2]
    expected = layout.attn_mask()
    got = attn_mask.cpu()
    if got.shape != expected.shape:
        _fail(f"attn_mask has shape {list(got.shape)}, expected {list(expected.shape)}")
    wrong = (got.to(torch.bool) != expected).nonzero()
    if len(wrong):
        i, j = (int(v) for v in wrong[0])
        n = layout.num_dn_rows
        role = lambda r: f"dn row {r} (group {r // (2 * layout.max_gt)})" if r < n else f"object query {r - n}"
        verb = "may not" if bool(expected[i, j]) else "must be allowed to"
        _fail(
            f"attn_mask[{i}, {j}] is {bool(got[i, j])}: {role(i)} {verb} attend to {role(j)} "
            f"({len(wrong)} wrong entries; groups are 2*max_gt = {2 * layout.max_gt} rows wide)"
        )


# --- 3. positive index lists ----------------------------------------------------------


def check_positive_indices(impl, case):
    """dn_positive_idx holds one int64 tensor per image, equal to the positive rows of
    that image's real boxes in every group, ascending: length n_i * G, never a padding
    or negative row."""
    layout = layout_of(case)
    if not layout.produces_output:
        return
    meta = _produced(impl, case)[3]
    idx = meta["dn_positive_idx"]
    if len(idx) != case.batch_size:
        _fail(f"dn_positive_idx has {len(idx)} entries, expected one per image ({case.batch_size})")
    negative = layout.row_is_negative()
    for i, (got, expected) in enumerate(zip(idx, layout.positive_idx())):
        if not isinstance(got, torch.Tensor) or got.dtype != torch.int64:
            _fail(f"dn_positive_idx[{i}] is {getattr(got, 'dtype', type(got).__name__)}, expected an int64 tensor")
        got = got.cpu()
        if torch.equal(got, expected):
            continue
        bad = [int(r) for r in got if not 0 <= int(r) < layout.num_dn_rows]
        if bad:
            _fail(f"dn_positive_idx[{i}] holds {bad[0]}, outside the {layout.num_dn_rows} dn rows")
        slot_of = lambda r: r % layout.max_gt
        for r in got.tolist():
            if negative[r]:
                _fail(f"dn_positive_idx[{i}] holds row {r}, a negative row (group {r // (2 * layout.max_gt)})")
            if slot_of(r) >= case.counts[i]:
                _fail(f"dn_positive_idx[{i}] holds row {r}, a padding row (image {i} has {case.counts[i]} boxes)")
        _fail(
            f"dn_positive_idx[{i}] is {got.tolist()[:12]}{'...' if len(got) > 12 else ''} (length {len(got)}); "
            f"expected {expected.tolist()[:12]}{'...' if len(expected) > 12 else ''} "
            f"(length {case.counts[i]} boxes * {layout.num_groups} groups = {len(expected)})"
        )


# --- 4. class queries -----------------------------------------------------------------


def check_class_queries(impl, case):
    """Every class-query row is exactly a row of class_embed.weight; padding rows carry
    class num_classes; real rows a class in [0, num_classes); with label_noise_ratio == 0
    real rows carry exactly their box's label."""
    layout = layout_of(case)
    if not layout.produces_output:
        return
    class_embed = case.class_embed()
    query_class = _produced(impl, case, class_embed=class_embed)[0]
    labels, exact = recover_labels(query_class.detach(), class_embed.weight.detach())
    labels, exact = labels.cpu(), exact.cpu()
    if not bool(exact.all()):
        i, r = (int(v) for v in (~exact).nonzero()[0])
        _fail(f"input_query_class[{i}, {r}] is not a row of class_embed.weight (nearest: class {int(labels[i, r])})")
    real = layout.real_rows()
    gt_labels, _ = gt_rows(case, layout)
    padding_wrong = (~real) & (labels != case.num_classes)
    if bool(padding_wrong.any()):
        i, r = (int(v) for v in padding_wrong.nonzero()[0])
        _fail(f"padding row {r} of image {i} carries class {int(labels[i, r])}, expected num_classes = {case.num_classes}")
    real_wrong = real & (labels >= case.num_classes)
    if bool(real_wrong.any()):
        i, r = (int(v) for v in real_wrong.nonzero()[0])
        _fail(f"real row {r} of image {i} carries class {int(labels[i, r])}, outside [0, {case.num_classes})")
    if case.label_noise_ratio == 0:
        changed = real & (labels != gt_labels)
        if bool(changed.any()):
            i, r = (int(v) for v in changed.nonzero()[0])
            _fail(
                f"label_noise_ratio is 0 but real row {r} of image {i} carries class {int(labels[i, r])} "
                f"instead of its label {int(gt_labels[i, r])}"
            )


# --- 5. boxes ---------------------------------------------------------------------------


def _clipped_interval(lo, hi):
    return lo.clamp(0, 1), hi.clamp(0, 1)


def _inside(x, interval, tol):
    lo, hi = interval
    return (x >= lo - tol) & (x <= hi + tol)


def box_noise_bounds_ok(case, layout, decoded, fixes_advisories: bool, tol: float):
    """Per real row and axis, whether the decoded box is reachable from its ground truth.

    With corners c1 < c2 of the ground truth on one axis and d = w/2 * scale (w the
    ground-truth side), the noised corner is v = c + s*u*d with s = +-1 and u in [0, 1)
    on positive rows, u in [1, 2) on negative rows; then clipped to [0, 1]. So a corner
    must lie in clip([c-d, c+d]) (positive) or clip([c-2d, c-d]) U clip([c+d, c+2d])
    (negative); clip is monotone, so clipping the interval ends is exact. A decoded
    box is accepted when
      (direct)   corner 1 lies in corner 1's set and corner 2 in corner 2's, or
      (crossed)  upstream only: the noised corners crossed (v2 < v1), so the side came
                 back clamped to ~1e-5 by inverse_sigmoid and only the centre
                 (v1 + v2)/2 survives: the decoded side is <= 2e-5 and the centre lies
                 between the lowest and highest sums of the two sets, halved, for a
                 pair of intervals in which corner 2 can fall below corner 1, or
      (swapped)  implementations that fix the advisories only: the two corners were
                 reordered (min, max), so corner 1 lies in corner 2's set and vice versa.
    Every comparison allows ``tol``. Returns bool [bs, N, 2] (x axis, y axis); padding
    rows are True.
    """
    _, gt_boxes = gt_rows(case, layout)
    gt_corners = corners(gt_boxes)
    got = corners(decoded)
    negative = layout.row_is_negative()[None, :].expand(layout.batch_size, -1)
    ok = []
    for axis in (0, 1):
        c1, c2 = gt_corners[..., axis], gt_corners[..., axis + 2]
        d = (gt_boxes[..., axis + 2] / 2) * case.box_noise_scale
        near = lambda c: [_clipped_interval(c - d, c + d)] * 2
        far = lambda c: [_clipped_interval(c - 2 * d, c - d), _clipped_interval(c + d, c + 2 * d)]
        sets1 = _role_intervals(negative, far(c1), near(c1))
        sets2 = _role_intervals(negative, far(c2), near(c2))
        x1, x2 = got[..., axis], got[..., axis + 2]
        in1 = lambda x: _inside(x, sets1[0], tol) | _inside(x, sets1[1], tol)
        in2 = lambda x: _inside(x, sets2[0], tol) | _inside(x, sets2[1], tol)
        axis_ok = in1(x1) & in2(x2)
        if fixes_advisories:
            axis_ok |= in1(x2) & in2(x1)
        else:
            side = x2 - x1
            centre = (x1 + x2) / 2
            crossed = torch.zeros_like(axis_ok)
            for a in sets1:
                for b in sets2:
                    can_cross = b[0] <= a[1] + tol
                    lo, hi = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
                    crossed |= can_cross & (centre >= lo - tol) & (centre <= hi + tol)
            axis_ok |= crossed & (side <= COLLAPSED_SIDE + tol)
        ok.append(axis_ok)
    ok = torch.stack(ok, dim=-1)
    return ok | ~layout.real_rows()[..., None]


def _role_intervals(negative, far, near):
    """The two allowed (lo, hi) intervals of a corner: ``far`` on negative rows, ``near``
    (the same interval twice) on positive rows."""
    return [
        (torch.where(negative, f_lo, n_lo), torch.where(negative, f_hi, n_hi))
        for (f_lo, f_hi), (n_lo, n_hi) in zip(far, near)
    ]


def check_boxes(impl, case):
    """Box queries. Padding rows hold the reference's padding value (0 in box space,
    inverse_sigmoid(0) = log(1e-5) in logit space). With box_noise_scale == 0 real rows
    equal the ground-truth box (box space upstream; sigmoid of the logits for an
    implementation that fixes the advisories). Otherwise every decoded corner lies in
    [0, 1] and is reachable from its ground-truth corner by positive noise |u| < 1 or
    negative noise 1 <= |u| < 2 of d = side/2 * scale, before the clip (see
    :func:`box_noise_bounds_ok` for the exact form, crossed corners included)."""
    layout = layout_of(case)
    if not layout.produces_output:
        return
    bbox = _produced(impl, case)[1].detach().cpu()
    logit_space = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
    tol = decoded_box_tolerance(case.dtype, logit_space)
    decoded = decode_boxes(bbox, logit_space)
    real = layout.real_rows()
    padding_value = inverse_sigmoid(torch.zeros(4, dtype=bbox.dtype)) if logit_space else torch.zeros(4, dtype=bbox.dtype)
    padding_wrong = (~real) & (bbox != padding_value).any(-1)
    if bool(padding_wrong.any()):
        i, r = (int(v) for v in padding_wrong.nonzero()[0])
        _fail(f"padding row {r} of image {i} holds {bbox[i, r].tolist()}, expected {padding_value.tolist()}")
    _, gt_boxes = gt_rows(case, layout)
    if case.box_noise_scale == 0:
        if logit_space:
            wrong = real & ((decoded - gt_boxes).abs() > tol).any(-1)
        else:
            wrong = real & (bbox != gt_boxes.to(bbox.dtype)).any(-1)
        if bool(wrong.any()):
            i, r = (int(v) for v in wrong.nonzero()[0])
            space = "sigmoid of the logits" if logit_space else "box (box space, as upstream at scale 0)"
            _fail(
                f"box_noise_scale is 0 but real row {r} of image {i}: {space} is {decoded[i, r].tolist()}, "
                f"expected the ground truth {gt_boxes[i, r].tolist()}"
            )
        return
    got = corners(decoded)
    outside = real[..., None] & ((got < -tol) | (got > 1 + tol))
    if bool(outside.any()):
        i, r, k = (int(v) for v in outside.nonzero()[0])
        _fail(f"real row {r} of image {i}: corner {'x1 y1 x2 y2'.split()[k]} = {float(got[i, r, k])} is outside [0, 1]")
    ok = box_noise_bounds_ok(case, layout, decoded, impl.fixes_advisories, tol)
    if not bool(ok.all()):
        i, r, axis = (int(v) for v in (~ok).nonzero()[0])
        kind = "negative" if bool(layout.row_is_negative()[r]) else "positive"
        allowed = "1 <= |u| < 2" if kind == "negative" else "|u| < 1"
        _fail(
            f"{kind} row {r} of image {i}: decoded {'xy'[axis]}-corners "
            f"({float(got[i, r, axis])}, {float(got[i, r, axis + 2])}) are not reachable from the ground truth "
            f"({float(corners(gt_boxes)[i, r, axis])}, {float(corners(gt_boxes)[i, r, axis + 2])}) by noise u*d with "
            f"{allowed}, d = side/2 * {case.box_noise_scale} = {float(gt_boxes[i, r, axis + 2] / 2 * case.box_noise_scale)}, "
            f"then a clip to [0, 1]"
        )


# --- 6. inputs untouched ----------------------------------------------------------------


def check_inputs_untouched(impl, case):
    """The caller's targets (list, dicts, labels and boxes tensors) and class_embed's
    weights are bit-identical after the call."""
    class_embed = case.class_embed()
    args = case.args(class_embed)
    targets = args[0]
    before = [{k: v.clone() for k, v in t.items()} for t in targets]
    weight_before = class_embed.weight.detach().clone()
    call_implementation(impl, case, args=args)
    if len(targets) != len(before):
        _fail(f"the targets list changed length from {len(before)} to {len(targets)}")
    for i, (t, b) in enumerate(zip(targets, before)):
        if set(t) != set(b):
            _fail(f"targets[{i}] keys changed from {sorted(b)} to {sorted(t)}")
        for key in b:
            if t[key].dtype != b[key].dtype or t[key].shape != b[key].shape or not torch.equal(t[key], b[key]):
                _fail(f"targets[{i}][{key!r}] was modified by the call")
    if not torch.equal(class_embed.weight.detach(), weight_before):
        _fail("class_embed.weight was modified by the call")


# --- 7. determinism ---------------------------------------------------------------------


def assert_outputs_equal(a, b, what: str, tolerance=None):
    """Four outputs equal: exactly, or, when ``tolerance`` (a
    :class:`~dnspec.tolerances.Tolerance`) is given, class queries within its ``embed``
    and boxes (compared in box space by the callers) within its ``box`` entry."""
    if (a[0] is None) != (b[0] is None):
        _fail(f"{what}: one call returned None outputs and the other did not")
    if a[0] is None:
        return
    names = ("input_query_class", "input_query_bbox", "attn_mask")
    for name, x, y, atol in zip(
        names, a[:3], b[:3], (None if tolerance is None else tolerance.embed, None if tolerance is None else tolerance.box, None)
    ):
        x, y = x.detach().cpu(), y.detach().cpu()
        if x.shape != y.shape:
            _fail(f"{what}: {name} shapes differ: {list(x.shape)} vs {list(y.shape)}")
        if atol is None:
            equal = torch.equal(x, y.to(x.dtype))
        else:
            equal = torch.allclose(x.double(), y.double(), rtol=0, atol=atol)
        if not equal:
            diff = (x.double() - y.double()).abs() if x.dtype != torch.bool else (x != y).double()
            at = tuple(int(v) for v in (diff == diff.max()).nonzero()[0])
            _fail(f"{what}: {name} differs at {list(at)}: {x[at].tolist()} vs {y[at].tolist()} (max |diff| {float(diff.max())})")
    ma, mb = a[3], b[3]
    if ma["dn_num_group"] != mb["dn_num_group"] or list(ma["dn_num_split"]) != list(mb["dn_num_split"]):
        _fail(f"{what}: dn_num_group/dn_num_split differ: {ma['dn_num_group']}, {ma['dn_num_split']} vs {mb['dn_num_group']}, {mb['dn_num_split']}")
    if len(ma["dn_positive_idx"]) != len(mb["dn_positive_idx"]):
        _fail(f"{what}: dn_positive_idx lengths differ")
    for i, (x, y) in enumerate(zip(ma["dn_positive_idx"], mb["dn_positive_idx"])):
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x.cpu(), y.cpu()):
            _fail(f"{what}: dn_positive_idx[{i}] differs: {x.tolist()} vs {y.tolist()}")


def check_determinism(impl, case):
    """Two calls after the same torch.manual_seed give identical outputs."""
    class_embed = case.class_embed()
    first = outputs_of(impl, case, class_embed=class_embed)
    second = outputs_of(impl, case, class_embed=class_embed)
    assert_outputs_equal(first, second, "two calls with the same seed")


# --- 8. differential --------------------------------------------------------------------


def _reference():
    from dnspec.reference import get_contrastive_denoising_training_group

    return get_contrastive_denoising_training_group


def check_noiseless_matches_reference(impl, case):
    """With label_noise_ratio == 0 and box_noise_scale == 0 the call is deterministic and
    equals the reference's output exactly (boxes compared through the sigmoid, within
    the dtype's tolerance, for implementations that return logits at scale 0)."""
    case = case.with_config(label_noise_ratio=0.0, box_noise_scale=0.0)
    class_embed = case.class_embed()
    got = outputs_of(impl, case, class_embed=class_embed)
    expected = case.call(_reference(), class_embed=class_embed)
    if impl.fixes_advisories and got[0] is not None and expected[0] is not None:
        got = (got[0], got[1].detach().to(torch.float64).sigmoid().to(got[1].dtype), got[2], got[3])
        tolerance = replace(tolerance_for(case.dtype), box=decoded_box_tolerance(case.dtype, logit_space=True))
        assert_outputs_equal(got, expected, "noise-free output vs the reference", tolerance)
    else:
        assert_outputs_equal(got, expected, "noise-free output vs the reference")


def check_injected_noise_matches_reference(impl, case):
    """For an implementation that accepts an injected draw: under the same NoiseDraw its
    outputs equal the reference's bit for bit."""
    layout = layout_of(case)
    if not layout.produces_output:
        return
    noise = draw_noise(
        case.batch_size,
        layout.num_dn_rows,
        case.num_classes,
        case.label_noise_ratio,
        case.box_noise_scale,
        device=case.device,
        box_dtype=case.dtype,
        generator=torch.Generator(device=case.device).manual_seed(case.seed),
    )
    class_embed = case.class_embed()
    got = outputs_of(impl, case, class_embed=class_embed, noise=noise)
    expected = case.call(_reference(), class_embed=class_embed, noise=noise)
    assert_outputs_equal(got, expected, "output under an injected draw vs the reference")
