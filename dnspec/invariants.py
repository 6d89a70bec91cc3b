"""The contract of a CDN builder, one check per invariant, for any implementation.

Each ``check_*`` function takes a :class:`~dnspec.trial.Trial` (one generated case and
the implementation's calls on it, made once and shared by every check) and raises
:class:`PropertyViolation` (an AssertionError) naming the first offending row or value
and the check that failed (``.check``, e.g. ``attention_mask.object_queries_see_dn``:
the id that groups failures into divergences), or :class:`Failures` when one call
breaks several independent checks (the box check judges each kind of row on its own).
A crash of the implementation reaches the caller as the call's ImplementationError.

The expected values come from :mod:`dnspec.layout` (the closed-form oracles), never from
the reference's code, except in the differential checks whose point is to compare with
it. The pytest suite and ``dnspec verify`` both run these functions through
:mod:`dnspec.runner`; nothing else holds an invariant.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from dnspec.boxes import inverse_sigmoid
from dnspec.decode import corners, decode_boxes, expects_logit_space, recover_labels
from dnspec.layout import CdnLayout
from dnspec.tolerances import decoded_box_tolerance, tolerance_for
from dnspec.trial import NOISE_FREE, CallKey

# sigmoid(inverse_sigmoid(0)) = 1e-5: the width or height a crossed box collapses to
COLLAPSED_SIDE = 2e-5
# RT-DETR allocates its box buffer with torch.zeros (the default dtype, float32) whatever
# the inputs' dtype; boxes in the inputs' own dtype are the accepted alternative
UPSTREAM_BOX_DTYPE = torch.float32


class PropertyViolation(AssertionError):
    """The implementation's output breaks an invariant: ``check`` names which one, and
    ``case`` is the call that showed it (None: the check's own case)."""

    def __init__(self, message: str, check: str = "", case=None):
        super().__init__(message)
        self.check, self.case = check, case


class Failures(AssertionError):
    """Several independent failures of one property on one case (each a
    PropertyViolation or an ImplementationError)."""

    def __init__(self, failures: list):
        super().__init__("; ".join(str(f) for f in failures))
        self.failures = list(failures)


def _fail(message: str, check: str, case=None):
    raise PropertyViolation(message, check, case)


def each_failure(error: BaseException) -> list:
    """The failures an AssertionError stands for (a Failures group flattened)."""
    if isinstance(error, Failures):
        return [leaf for f in error.failures for leaf in each_failure(f)]
    return [error]


def raise_all(failures: list) -> None:
    """Raise nothing, the one failure, or Failures when there are several."""
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise Failures(failures)


def judge_separately(*parts) -> None:
    """Run each part (a zero-argument callable); raise what fails (:func:`raise_all`).
    A part that fails does not stop the others."""
    failures = []
    for part in parts:
        try:
            part()
        except AssertionError as failure:
            failures.extend(each_failure(failure))
    raise_all(failures)


def outputs_of(trial, key: CallKey = CallKey()):
    """The four outputs of one call of ``trial``, checking only that there are four and
    that the tensors are on the inputs' device (anything else is a structure violation),
    and, for a call given an injected draw, that the call left the draw as it was."""
    outputs = trial.outputs(key)
    case = trial.case_for(key)
    changed = trial.modified_draws.get(trial.normal(key))
    if changed:
        _fail(f"the call modified the injected NoiseDraw it was given ({changed} changed in place): a caller that "
              "reuses a draw (to compare devices or dtypes) gets another draw", "inputs_untouched.injected_draw", case)
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        _fail(f"returned {_describe(outputs)}; expected a tuple of 4 outputs", "structure.outputs", case)
    expected_device = torch.device(case.device).type
    for name, value in zip(("input_query_class", "input_query_bbox", "attn_mask"), outputs[:3]):
        if isinstance(value, torch.Tensor) and value.device.type != expected_device:
            _fail(f"{name} is on {value.device}, but the inputs are on {case.device}", "structure.device", case)
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


def accepted_box_dtypes(dtype: torch.dtype) -> tuple[torch.dtype, ...]:
    """The dtypes the box output may have for boxes in ``dtype``: the inputs' own, or
    RT-DETR's float32 buffer."""
    return tuple(dict.fromkeys((dtype, UPSTREAM_BOX_DTYPE)))


# --- 1. structure ---------------------------------------------------------------------


def check_structure(trial):
    """Four outputs; (None,)*4 when num_denoising <= 0; for an all-empty batch one of the
    known conventions (:mod:`dnspec.conventions`: four Nones, a dummy group, meta only, an
    empty group), consistent with itself (and four Nones when ``--convention rtdetr``
    asks for RT-DETR's); otherwise shapes [bs,N,D], [bs,N,4], [N+Q,N+Q], a bool mask,
    class queries in the embedding's dtype and boxes in the boxes' dtype or in float32
    (RT-DETR's buffer), all on the inputs' device; dn_num_split == [N, Q] and
    dn_num_group == max(1, num_denoising // max_gt)."""
    case = trial.case
    outputs = outputs_of(trial)
    layout = layout_of(case)
    if case.num_denoising <= 0:
        if any(o is not None for o in outputs):
            _fail(f"expected (None, None, None, None) for num_denoising={case.num_denoising} (denoising off); got "
                  f"{tuple(type(o).__name__ for o in outputs)}", "structure.none_outputs")
        return
    if not layout.produces_output:
        _check_empty_batch(trial, outputs)
        return
    query_class, query_bbox, attn_mask, meta = outputs
    if query_class is None:
        _fail("returned None outputs for a batch with boxes and num_denoising > 0", "structure.none_outputs")
    n, q, bs, d = layout.num_dn_rows, case.num_queries, case.batch_size, case.embed_dim
    expected = {
        "input_query_class": (query_class, (bs, n, d), (case.dtype,)),
        "input_query_bbox": (query_bbox, (bs, n, 4), accepted_box_dtypes(case.dtype)),
        "attn_mask": (attn_mask, (n + q, n + q), (torch.bool,)),
    }
    for name, (value, shape, dtypes) in expected.items():
        if not isinstance(value, torch.Tensor):
            _fail(f"{name} is {type(value).__name__}, expected a tensor", f"structure.{name}.type")
        if tuple(value.shape) != shape:
            _fail(f"{name} has shape {list(value.shape)}, expected {list(shape)} (N={n}, Q={q}, bs={bs}, D={d})",
                  f"structure.{name}.shape")
        if value.dtype not in dtypes:
            _fail(f"{name} has dtype {value.dtype}, expected {' or '.join(str(t) for t in dtypes)}"
                  + (" (the inputs' dtype, or RT-DETR's float32 buffer)" if len(dtypes) > 1 else ""),
                  f"structure.{name}.dtype")
    if not isinstance(meta, dict):
        _fail(f"dn_meta is {type(meta).__name__}, expected a dict", "structure.dn_meta.type")
    missing = {"dn_positive_idx", "dn_num_group", "dn_num_split"} - set(meta)
    if missing:
        _fail(f"dn_meta lacks {sorted(missing)}; has {sorted(meta)}", "structure.dn_meta.keys")
    if list(meta["dn_num_split"]) != layout.dn_num_split:
        _fail(f"dn_num_split is {meta['dn_num_split']}, expected [N, Q] = {layout.dn_num_split}", "structure.dn_num_split")
    if meta["dn_num_group"] != layout.num_groups:
        _fail(
            f"dn_num_group is {meta['dn_num_group']}, expected max(1, {case.num_denoising} // {layout.max_gt}) "
            f"= {layout.num_groups}",
            "structure.dn_num_group",
        )


def _check_empty_batch(trial, outputs) -> None:
    """An all-empty batch: recognise the convention, record it on the trial, and judge
    it for consistency (each problem its own check id) and against a required one."""
    from dnspec import conventions

    recognised = conventions.recognise(outputs, trial.case)
    if recognised is None:
        _fail(f"for a batch with no boxes got {tuple(_describe(o) if o is not None else 'None' for o in outputs)}: "
              f"none of the known conventions ({', '.join(conventions.TITLES)})", "structure.empty_batch")
    trial.observations["empty_batch"] = recognised.convention
    failures = [PropertyViolation(f"empty-batch convention {recognised.convention}: {message}",
                                  f"structure.empty_batch.{recognised.convention}.{problem}")
                for problem, message in recognised.problems]
    required = trial.required_convention
    if required and recognised.convention != required and not failures:
        failures.append(PropertyViolation(
            f"for a batch with no boxes it returns {conventions.TITLES[recognised.convention]}, but "
            f"{conventions.TITLES[required]} is required (--convention)", "structure.empty_batch.convention"))
    raise_all(failures)


def _produced(trial, key: CallKey = CallKey()):
    """Outputs of a call that must produce some (structure is its own property)."""
    outputs = outputs_of(trial, key)
    if outputs[0] is None:
        _fail("returned None outputs for a batch with boxes and num_denoising > 0", "structure.none_outputs",
              trial.case_for(key))
    return outputs


# --- 2. attention mask ----------------------------------------------------------------


def check_attention_mask(trial):
    """The mask equals the layout oracle exactly: object queries (rows >= N) see no dn
    row; a dn row sees every object query and the 2*max_gt rows of its own group only.
    Wrong entries are judged by kind (object queries seeing dn rows; dn groups seeing
    each other; entries blocked that must be open), each kind on its own."""
    layout = layout_of(trial.case)
    if not layout.produces_output:
        return
    attn_mask = _produced(trial)[2]
    expected = layout.attn_mask()
    got = attn_mask.cpu()
    if got.shape != expected.shape:
        _fail(f"attn_mask has shape {list(got.shape)}, expected {list(expected.shape)}", "attention_mask.shape")
    wrong = got.to(torch.bool) != expected
    if not bool(wrong.any()):
        return
    n = layout.num_dn_rows
    rows = torch.arange(expected.shape[0])
    query_is_object = (rows >= n)[:, None]
    key_is_dn = (rows < n)[None, :]
    kinds = {
        "object_queries_see_dn": wrong & expected & query_is_object & key_is_dn,
        "groups_see_each_other": wrong & expected & ~query_is_object & key_is_dn,
        "over_masked": wrong & ~expected,
    }
    role = lambda r: f"dn row {r} (group {r // (2 * layout.max_gt)})" if r < n else f"object query {r - n}"
    failures = []
    for kind, cells in kinds.items():
        if not bool(cells.any()):
            continue
        i, j = (int(v) for v in cells.nonzero()[0])
        verb = "may not" if bool(expected[i, j]) else "must be allowed to"
        failures.append(PropertyViolation(
            f"attn_mask[{i}, {j}] is {bool(got[i, j])}: {role(i)} {verb} attend to {role(j)} "
            f"({int(cells.sum())} such entries of {int(wrong.sum())} wrong; groups are 2*max_gt = {2 * layout.max_gt} rows wide)",
            f"attention_mask.{kind}",
        ))
    raise_all(failures)


# --- 3. positive index lists ----------------------------------------------------------


def check_positive_indices(trial):
    """dn_positive_idx holds one int64 tensor per image, equal to the positive rows of
    that image's real boxes in every group, ascending: length n_i * G, never a padding
    or negative row."""
    case = trial.case
    layout = layout_of(case)
    if not layout.produces_output:
        return
    meta = _produced(trial)[3]
    idx = meta["dn_positive_idx"]
    if not isinstance(idx, (list, tuple)) or len(idx) != case.batch_size:
        _fail(f"dn_positive_idx has {len(idx) if hasattr(idx, '__len__') else type(idx).__name__} entries, "
              f"expected one per image ({case.batch_size})", "positive_indices.count")
    negative = layout.row_is_negative()
    for i, (got, expected) in enumerate(zip(idx, layout.positive_idx())):
        if not isinstance(got, torch.Tensor) or got.dtype != torch.int64:
            _fail(f"dn_positive_idx[{i}] is {getattr(got, 'dtype', type(got).__name__)}, expected an int64 tensor",
                  "positive_indices.type")
        got = got.cpu()
        if torch.equal(got, expected):
            continue
        bad = [int(r) for r in got if not 0 <= int(r) < layout.num_dn_rows]
        if bad:
            _fail(f"dn_positive_idx[{i}] holds {bad[0]}, outside the {layout.num_dn_rows} dn rows", "positive_indices.out_of_range")
        for r in got.tolist():
            if negative[r]:
                _fail(f"dn_positive_idx[{i}] holds row {r}, a negative row (group {r // (2 * layout.max_gt)})",
                      "positive_indices.negative_row")
            if r % layout.max_gt >= case.counts[i]:
                _fail(f"dn_positive_idx[{i}] holds row {r}, a padding row (image {i} has {case.counts[i]} boxes)",
                      "positive_indices.padding_row")
        _fail(
            f"dn_positive_idx[{i}] is {got.tolist()[:12]}{'...' if len(got) > 12 else ''} (length {len(got)}); "
            f"expected {expected.tolist()[:12]}{'...' if len(expected) > 12 else ''} "
            f"(length {case.counts[i]} boxes * {layout.num_groups} groups = {len(expected)})",
            "positive_indices.wrong_rows",
        )


# --- 4. class queries -----------------------------------------------------------------


def check_class_queries(trial):
    """Every class-query row is exactly a row of class_embed.weight; padding rows carry
    class num_classes; real rows a class in [0, num_classes); with label_noise_ratio == 0
    real rows carry exactly their box's label. Each of the four is judged on its own."""
    case = trial.case
    layout = layout_of(case)
    if not layout.produces_output:
        return
    query_class = _produced(trial)[0]
    weight = trial.weight
    labels, exact = recover_labels(query_class.detach(), weight)
    labels, exact = labels.cpu(), exact.cpu()
    real = layout.real_rows()
    gt_labels, _ = gt_rows(case, layout)

    def first(mask):
        return tuple(int(v) for v in mask.nonzero()[0])

    def not_rows():
        if not bool(exact.all()):
            i, r = first(~exact)
            _fail(f"input_query_class[{i}, {r}] is not a row of class_embed.weight (nearest: class {int(labels[i, r])})",
                  "class_queries.not_embedding_row")

    def padding():
        wrong = (~real) & (labels != case.num_classes)
        if bool(wrong.any()):
            i, r = first(wrong)
            _fail(f"padding row {r} of image {i} carries class {int(labels[i, r])}, expected num_classes = {case.num_classes}",
                  "class_queries.padding_class")

    def real_range():
        wrong = real & (labels >= case.num_classes)
        if bool(wrong.any()):
            i, r = first(wrong)
            _fail(f"real row {r} of image {i} carries class {int(labels[i, r])}, outside [0, {case.num_classes})",
                  "class_queries.real_class_range")

    def exact_labels():
        if case.label_noise_ratio != 0:
            return
        changed = real & (labels != gt_labels)
        if bool(changed.any()):
            i, r = first(changed)
            _fail(f"label_noise_ratio is 0 but real row {r} of image {i} carries class {int(labels[i, r])} "
                  f"instead of its label {int(gt_labels[i, r])}", "class_queries.label_at_ratio_0")

    judge_separately(not_rows, padding, real_range, exact_labels)


# --- 5. boxes ---------------------------------------------------------------------------


def _clipped_interval(lo, hi):
    return lo.clamp(0, 1), hi.clamp(0, 1)


def _inside(x, interval, tol):
    lo, hi = interval
    return (x >= lo - tol) & (x <= hi + tol)


def box_noise_bounds(case, layout, decoded, tol: float) -> dict[str, torch.Tensor]:
    """Per real row and axis, how the decoded box relates to its ground truth.

    With corners c1 < c2 of the ground truth on one axis and d = w/2 * scale (w the
    ground-truth side), the noised corner is v = c + s*u*d with s = +-1 and u in [0, 1)
    on positive rows, u in [1, 2) on negative rows; then clipped to [0, 1]. So a corner
    must lie in clip([c-d, c+d]) (positive) or clip([c-2d, c-d]) U clip([c+d, c+2d])
    (negative); clip is monotone, so clipping the interval ends is exact. Returns bool
    masks [bs, N, 2] (x axis, y axis):
      ``direct``     corner 1 lies in corner 1's set and corner 2 in corner 2's;
      ``collapsed``  RT-DETR's answer when the noised corners crossed (v2 < v1): the side
                     came back clamped to ~1e-5 by inverse_sigmoid and only the centre
                     (v1 + v2)/2 survives: the decoded side is <= 2e-5 and the centre lies
                     between the lowest and highest sums of the two sets, halved, for a
                     pair of intervals in which corner 2 can fall below corner 1;
      ``swapped``    the corners reordered (min, max) or the side flipped to |w|: corner 1
                     lies in corner 2's set and vice versa (what fixes the advisory);
      ``crossable``  the two corners' sets allow corner 2 to fall below corner 1.
    Every comparison allows ``tol``. Padding rows are True in direct.
    """
    _, gt_boxes = gt_rows(case, layout)
    gt_corners = corners(gt_boxes)
    got = corners(decoded)
    negative = layout.row_is_negative()[None, :].expand(layout.batch_size, -1)
    masks = {name: [] for name in ("direct", "collapsed", "swapped", "crossable")}
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
        centre = (x1 + x2) / 2
        crossed_centre = torch.zeros_like(x1, dtype=torch.bool)
        crossable = torch.zeros_like(crossed_centre)
        for a in sets1:
            for b in sets2:
                can_cross = b[0] <= a[1] + tol
                lo, hi = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
                crossable |= can_cross
                crossed_centre |= can_cross & (centre >= lo - tol) & (centre <= hi + tol)
        masks["direct"].append(in1(x1) & in2(x2))
        masks["collapsed"].append(crossed_centre & (x2 - x1 <= COLLAPSED_SIDE + tol))
        masks["swapped"].append(in1(x2) & in2(x1))
        masks["crossable"].append(crossable)
    out = {name: torch.stack(parts, dim=-1) for name, parts in masks.items()}
    out["direct"] |= ~layout.real_rows()[..., None]
    return out


def box_noise_bounds_ok(case, layout, decoded, fixes_advisories: bool, tol: float) -> torch.Tensor:
    """bool [bs, N, 2]: the decoded box is reachable from its ground truth on that axis
    (see :func:`box_noise_bounds`): directly, or when its corners crossed, collapsed as
    upstream does (an implementation keeping upstream behaviour) or swapped (one that
    fixes the advisories)."""
    bounds = box_noise_bounds(case, layout, decoded, tol)
    crossed_ok = bounds["swapped"] if fixes_advisories else bounds["collapsed"]
    return bounds["direct"] | crossed_ok


def _role_intervals(negative, far, near):
    """The two allowed (lo, hi) intervals of a corner: ``far`` on negative rows, ``near``
    (the same interval twice) on positive rows."""
    return [
        (torch.where(negative, f_lo, n_lo), torch.where(negative, f_hi, n_hi))
        for (f_lo, f_hi), (n_lo, n_hi) in zip(far, near)
    ]


# the kinds of row the box check judges separately, in the order a failing row is
# assigned to them
BOX_ROW_KINDS = {
    "padding": "padding rows",
    "crossed": "rows whose noised corners crossed",
    "pinned": "rows with a corner pinned at the border by the clip",
    "negative": "negative rows",
    "positive": "positive rows",
}


def check_boxes(trial):
    """Box queries. Padding rows hold the reference's padding value (0 in box space,
    inverse_sigmoid(0) = log(1e-5) in logit space). With box_noise_scale == 0 real rows
    equal the ground-truth box (box space upstream; sigmoid of the logits for an
    implementation that fixes the advisories). Otherwise every decoded corner lies in
    [0, 1] and is reachable from its ground-truth corner by positive noise |u| < 1 or
    negative noise 1 <= |u| < 2 of d = side/2 * scale, before the clip (see
    :func:`box_noise_bounds` for the exact form, crossed corners included).

    Each kind of row (:data:`BOX_ROW_KINDS`: padding; rows whose corners crossed; a
    corner pinned at the border; other negative rows; other positive rows) is judged on
    its own, so a bug confined to crossed corners is reported as exactly that while the
    other rows are still judged."""
    case, impl = trial.case, trial.impl
    layout = layout_of(case)
    if not layout.produces_output:
        return
    bbox = _produced(trial)[1].detach().cpu()
    logit_space = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
    tol = decoded_box_tolerance(case.dtype, logit_space)
    decoded = decode_boxes(bbox, logit_space)
    real = layout.real_rows()
    _, gt_boxes = gt_rows(case, layout)
    failures = []

    def padding():
        value = inverse_sigmoid(torch.zeros(4, dtype=bbox.dtype)) if logit_space else torch.zeros(4, dtype=bbox.dtype)
        wrong = (~real) & (bbox != value).any(-1)
        if bool(wrong.any()):
            i, r = (int(v) for v in wrong.nonzero()[0])
            _fail(f"padding row {r} of image {i} holds {bbox[i, r].tolist()}, expected {value.tolist()}", "boxes.padding")

    if case.box_noise_scale == 0:
        def ground_truth():
            if logit_space:
                wrong = real & ((decoded - gt_boxes).abs() > tol).any(-1)
            else:
                wrong = real & (bbox != gt_boxes.to(bbox.dtype)).any(-1)
            if bool(wrong.any()):
                i, r = (int(v) for v in wrong.nonzero()[0])
                space = "sigmoid of the logits" if logit_space else "box (box space, as upstream at scale 0)"
                _fail(f"box_noise_scale is 0 but real row {r} of image {i}: {space} is {decoded[i, r].tolist()}, "
                      f"expected the ground truth {gt_boxes[i, r].tolist()}", "boxes.ground_truth_at_scale_0")

        judge_separately(padding, ground_truth)
        return

    got = corners(decoded)
    outside = real[..., None] & ((got < -tol) | (got > 1 + tol))

    def inside_image():
        if bool(outside.any()):
            i, r, k = (int(v) for v in outside.nonzero()[0])
            _fail(f"real row {r} of image {i}: corner {'x1 y1 x2 y2'.split()[k]} = {float(got[i, r, k])} is outside [0, 1]",
                  "boxes.outside_image")

    bounds = box_noise_bounds(case, layout, decoded, tol)
    crossed_ok = bounds["swapped"] if impl.fixes_advisories else bounds["collapsed"]
    wrong = ~(bounds["direct"] | crossed_ok) & ~outside.view(*outside.shape[:2], 2, 2).any(-2)
    negative = layout.row_is_negative()[None, :, None].expand_as(wrong)
    crossed = wrong & bounds["crossable"] & (bounds["swapped"] | bounds["collapsed"]
                                              | ((got[..., 2:] - got[..., :2]) <= COLLAPSED_SIDE + tol))
    at_border = (got <= tol) | (got >= 1 - tol)
    pinned = wrong & ~crossed & at_border.view(*at_border.shape[:2], 2, 2).any(-2)
    kinds = {
        "crossed": crossed,
        "pinned": pinned,
        "negative": wrong & ~crossed & ~pinned & negative,
        "positive": wrong & ~crossed & ~pinned & ~negative,
    }

    def judge(kind):
        def part():
            cells = kinds[kind]
            if bool(cells.any()):
                i, r, axis = (int(v) for v in cells.nonzero()[0])
                _fail(_box_message(kind, case, layout, impl, got, gt_boxes, bounds, i, r, axis, int(cells.sum())), f"boxes.{kind}")
        return part

    judge_separately(padding, inside_image, *[judge(kind) for kind in kinds])


def _box_message(kind, case, layout, impl, got, gt_boxes, bounds, i, r, axis, count) -> str:
    role = "negative" if bool(layout.row_is_negative()[r]) else "positive"
    allowed = "1 <= |u| < 2" if role == "negative" else "|u| < 1"
    xy = "xy"[axis]
    a, b = float(got[i, r, axis]), float(got[i, r, axis + 2])
    g1, g2 = float(corners(gt_boxes)[i, r, axis]), float(corners(gt_boxes)[i, r, axis + 2])
    d = float(gt_boxes[i, r, axis + 2] / 2 * case.box_noise_scale)
    where = f"{role} row {r} of image {i}"
    more = f" ({count} such row-axes)"
    if kind == "crossed":
        if not impl.fixes_advisories and bool(bounds["swapped"][i, r, axis]):
            return (f"{where}: its noised {xy}-corners crossed and came back reordered, spanning ({a}, {b}) with side "
                    f"|w| = {b - a}: RT-DETR lets a crossed box collapse to side 1e-5 (inverse_sigmoid of a negative "
                    f"width); reordering fixes advisory no_collapsed_boxes, so declare fixes_advisories if it is "
                    f"deliberate{more}")
        if impl.fixes_advisories and bool(bounds["collapsed"][i, r, axis]):
            return (f"{where}: its noised {xy}-corners crossed and the box collapsed to side {b - a} as upstream's does, "
                    f"but the implementation declares fixes_advisories (crossed corners reordered){more}")
        return (f"{where}: its noised {xy}-corners can cross, but the box comes back as ({a}, {b}), neither collapsed "
                f"to side 1e-5 around a reachable centre nor spanning the two corners{more}")
    reason = (f"decoded {xy}-corners ({a}, {b}) are not reachable from the ground truth ({g1}, {g2}) by noise u*d with "
              f"{allowed}, d = side/2 * {case.box_noise_scale} = {d}, then a clip to [0, 1]")
    if kind == "pinned":
        return f"{where}, a corner pinned at the border: {reason}{more}"
    return f"{where}: {reason}{more}"


# --- 6. inputs untouched ----------------------------------------------------------------


def check_inputs_untouched(trial):
    """The caller's targets (list, dicts, labels and boxes tensors) and class_embed's
    weights are bit-identical after the (main) call."""
    case = trial.case
    trial.outputs()
    targets, class_embed = trial.main_args[0], trial.main_args[3]
    before = case.targets
    if len(targets) != len(before):
        _fail(f"the targets list changed length from {len(before)} to {len(targets)}", "inputs_untouched.targets")
    for i, (t, b) in enumerate(zip(targets, before)):
        if set(t) != set(b):
            _fail(f"targets[{i}] keys changed from {sorted(b)} to {sorted(t)}", "inputs_untouched.targets")
        for key in b:
            if t[key].dtype != b[key].dtype or t[key].shape != b[key].shape or not torch.equal(t[key], b[key]):
                _fail(f"targets[{i}][{key!r}] was modified by the call", "inputs_untouched.targets")
    if not torch.equal(class_embed.weight.detach(), trial.weight):
        _fail("class_embed.weight was modified by the call", "inputs_untouched.class_embed")


# --- 7. determinism ---------------------------------------------------------------------


def assert_outputs_equal(a, b, what: str, tolerance=None, check: str = "outputs", case=None):
    """Four outputs equal: exactly, or, when ``tolerance`` (a
    :class:`~dnspec.tolerances.Tolerance`) is given, class queries within its ``embed``
    and boxes (compared in box space by the callers) within its ``box`` entry. A failure's
    check id is ``check`` + the output that differs (``.attn_mask``, ``.dn_meta``, ...)."""
    if (a[0] is None) != (b[0] is None):
        _fail(f"{what}: one call returned None outputs and the other did not", f"{check}.none", case)
    if a[0] is None:
        return
    names = ("input_query_class", "input_query_bbox", "attn_mask")
    for name, x, y, atol in zip(
        names, a[:3], b[:3], (None if tolerance is None else tolerance.embed, None if tolerance is None else tolerance.box, None)
    ):
        x, y = x.detach().cpu(), y.detach().cpu()
        if x.shape != y.shape:
            _fail(f"{what}: {name} shapes differ: {list(x.shape)} vs {list(y.shape)}", f"{check}.{name}", case)
        if atol is None:
            equal = torch.equal(x, y.to(x.dtype))
        else:
            equal = torch.allclose(x.double(), y.double(), rtol=0, atol=atol)
        if not equal:
            diff = (x.double() - y.double()).abs() if x.dtype != torch.bool else (x != y).double()
            at = tuple(int(v) for v in (diff == diff.max()).nonzero()[0])
            _fail(f"{what}: {name} differs at {list(at)}: {x[at].tolist()} vs {y[at].tolist()} (max |diff| {float(diff.max())})",
                  f"{check}.{name}", case)
    ma, mb = a[3], b[3]
    if ma["dn_num_group"] != mb["dn_num_group"] or list(ma["dn_num_split"]) != list(mb["dn_num_split"]):
        _fail(f"{what}: dn_num_group/dn_num_split differ: {ma['dn_num_group']}, {ma['dn_num_split']} vs "
              f"{mb['dn_num_group']}, {mb['dn_num_split']}", f"{check}.dn_meta", case)
    if len(ma["dn_positive_idx"]) != len(mb["dn_positive_idx"]):
        _fail(f"{what}: dn_positive_idx lengths differ", f"{check}.dn_positive_idx", case)
    for i, (x, y) in enumerate(zip(ma["dn_positive_idx"], mb["dn_positive_idx"])):
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x.cpu(), y.cpu()):
            _fail(f"{what}: dn_positive_idx[{i}] differs: {x.tolist()} vs {y.tolist()}", f"{check}.dn_positive_idx", case)


def check_determinism(trial):
    """Two calls after the same torch.manual_seed give identical outputs."""
    first = outputs_of(trial)
    second = outputs_of(trial, CallKey(repeat=1))
    assert_outputs_equal(first, second, "two calls with the same seed", check="determinism")


# --- 8. differential --------------------------------------------------------------------


def check_noiseless_matches_reference(trial):
    """With label_noise_ratio == 0 and box_noise_scale == 0 the call is deterministic and
    equals the reference's output exactly (boxes compared through the sigmoid, within
    the dtype's tolerance, for implementations that return logits at scale 0; boxes in
    float32, RT-DETR's buffer, compared at the inputs' dtype's tolerance). An all-empty
    batch is left to the structure check, which judges it by its convention."""
    key = CallKey(config=NOISE_FREE)
    case = trial.case_for(key)
    if case.num_denoising > 0 and not layout_of(case).produces_output:
        return
    got = outputs_of(trial, key)
    expected = trial.reference(key)
    check = "noiseless_matches_reference"
    if got[0] is not None and expected[0] is not None:
        if trial.impl.fixes_advisories:
            got = (got[0], got[1].detach().to(torch.float64).sigmoid().to(got[1].dtype), got[2], got[3])
            tolerance = replace(tolerance_for(case.dtype), box=decoded_box_tolerance(case.dtype, logit_space=True))
            assert_outputs_equal(got, expected, "noise-free output vs the reference", tolerance, check, case)
            return
        if got[1] is not None and getattr(got[1], "dtype", None) != expected[1].dtype:
            # RT-DETR's float32 buffer for inputs in another dtype: the values, at the inputs' tolerance
            tolerance = replace(tolerance_for(case.dtype), embed=0.0)
            assert_outputs_equal(got, expected, "noise-free output vs the reference", tolerance, check, case)
            return
    assert_outputs_equal(got, expected, "noise-free output vs the reference", check=check, case=case)


def check_injected_noise_matches_reference(trial):
    """For an implementation that accepts an injected draw: under the same NoiseDraw its
    outputs equal the reference's bit for bit."""
    if not layout_of(trial.case).produces_output:
        return
    key = CallKey(injected=True)
    got = outputs_of(trial, key)
    expected = trial.reference(key)
    assert_outputs_equal(got, expected, "output under an injected draw vs the reference",
                         check="injected_noise_matches_reference", case=trial.case_for(key))
