"""The contract of a CDN builder, one check per invariant, for any implementation.

Each ``check_*`` function takes a :class:`~dnspec.calling.trial.Trial` (one generated case and
the implementation's calls on it, made once and shared by every check) and raises
:class:`~dnspec.checks.violations.PropertyViolation` (an AssertionError) naming the first
offending row or value and the check that failed (``.check``, e.g.
``attention_mask.object_queries_see_dn``: the id that groups failures into divergences),
or :class:`~dnspec.checks.violations.Failures` when one call breaks several independent checks.
A crash of the implementation reaches the caller as the call's ImplementationError. The
box check lives in :mod:`dnspec.checks.box_checks`, the attention-mask check in
:mod:`dnspec.checks.mask_checks`.

The expected values come from :mod:`dnspec.contract.layout` (the closed-form oracles), never from
the reference's code, except in the differential checks whose point is to compare with
it. The pytest suite and ``dnspec verify`` both run these functions through
:mod:`dnspec.running.runner`; nothing else holds an invariant.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from dnspec.calling.trial import NOISE_FREE, CallKey
from dnspec.checks.violations import PropertyViolation, fail, judge_separately, raise_all
from dnspec.contract.decode import LOGIT, expects_logit_space, recover_labels, space_at_scale_0
from dnspec.contract.layout import CdnLayout
from dnspec.contract.mask_layouts import ReadMask, Unreadable, read_mask
from dnspec.contract.tolerances import decoded_box_tolerance, tolerance_for

# RT-DETR allocates its box buffer with torch.zeros (the default dtype, float32) whatever
# the inputs' dtype; boxes in the inputs' own dtype are the accepted alternative
UPSTREAM_BOX_DTYPE = torch.float32


def outputs_of(trial, key: CallKey = CallKey()):
    """The four outputs of one call of ``trial`` as :func:`raw_outputs_of` checks them,
    with the attention mask read back as RT-DETR's ``[T, T]`` bool (True = blocked) when
    it is in another layout or value convention (:mod:`dnspec.contract.mask_layouts`;
    blocked only where every slice blocks), so that every check but the structure and
    mask checks, which judge the mask as returned, compares RT-DETR's form. A mask in no
    known layout is left as it is (the structure check reports it)."""
    outputs = raw_outputs_of(trial, key)
    mask = outputs[2]
    if not isinstance(mask, torch.Tensor) or (mask.dtype == torch.bool and mask.dim() == 2):
        return outputs
    case = trial.case_for(key)
    layout = layout_of(case)
    if case.num_denoising <= 0 or not layout.produces_output:
        return outputs
    read = read_layout(mask, case, layout, trial.memo)
    if isinstance(read, ReadMask):
        return (outputs[0], outputs[1], read.combined(), outputs[3])
    return outputs


def read_layout(mask, case, layout: CdnLayout | None = None, memo: dict | None = None) -> ReadMask | Unreadable:
    """``mask`` read in the layout conventions of :mod:`dnspec.contract.mask_layouts`, for
    the case's batch and T = N + Q, the oracle deciding a bool mask's polarity where the
    layout does not. With ``memo`` (a trial's: it lives as long as the outputs it reads)
    a mask is read once however many checks ask (a per-head mask of a batch of eight
    images holds millions of entries)."""
    if memo is not None:
        hit = memo.get(("read_layout", id(mask)))
        if hit is not None and hit[0] is mask:  # the memo holds the mask, so its id is not reused
            return hit[1]
    layout = layout or layout_of(case)
    size = layout.num_dn_rows + case.num_queries
    read = read_mask(mask, case.batch_size, size, layout.attn_mask(device=getattr(mask, "device", None)))
    if memo is not None:
        memo[("read_layout", id(mask))] = (mask, read)
    return read


def raw_outputs_of(trial, key: CallKey = CallKey()):
    """The four outputs of one call of ``trial``, checking only that there are four and
    that the tensors are on the inputs' device (anything else is a structure violation),
    and, for a call given an injected draw, that the call left the draw as it was."""
    outputs = trial.outputs(key)
    case = trial.case_for(key)
    changed = trial.modified_draws.get(trial.normal(key))
    if changed:
        fail(
            f"the call modified the injected NoiseDraw it was given ({changed} changed in place): a caller that "
            "reuses a draw (to compare devices or dtypes) gets another draw",
            "inputs_untouched.injected_draw",
            case,
        )
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        fail(f"returned {_describe(outputs)}; expected a tuple of 4 outputs", "structure.outputs", case)
    expected_device = torch.device(case.device).type
    for name, value in zip(("input_query_class", "input_query_bbox", "attn_mask"), outputs[:3], strict=True):
        if isinstance(value, torch.Tensor) and value.device.type != expected_device:
            fail(f"{name} is on {value.device}, but the inputs are on {case.device}", "structure.device", case)
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


def returns_logits(case, bbox, fixes_advisories: bool) -> bool:
    """Whether the box output ``bbox`` of a call on ``case`` is in logit space: always for
    an implementation that declares ``fixes_advisories`` and at box_noise_scale > 0; at
    scale 0, the space the output is in (:func:`dnspec.contract.decode.space_at_scale_0`:
    RT-DETR's box space, or logits as forks that fix advisory box_output_space return),
    box space when it cannot be told."""
    if fixes_advisories or case.box_noise_scale > 0:
        return expects_logit_space(case.box_noise_scale, fixes_advisories)
    return scale_0_space(case, bbox) == LOGIT


def scale_0_space(case, bbox) -> str | None:
    """``'box'`` or ``'logit'``: the space the box output of a call at box_noise_scale 0
    is in, when exactly one fits it (None: neither or both, or no rows to tell by)."""
    layout = layout_of(case)
    if not (isinstance(bbox, torch.Tensor) and layout.produces_output and case.num_denoising > 0):
        return None
    if tuple(bbox.shape) != (layout.batch_size, layout.num_dn_rows, 4) or not bbox.is_floating_point():
        return None
    _, gt_boxes = gt_rows(case, layout)
    return space_at_scale_0(bbox.detach().cpu(), gt_boxes, layout.real_rows())


def accepted_box_dtypes(dtype: torch.dtype) -> tuple[torch.dtype, ...]:
    """The dtypes the box output may have for boxes in ``dtype``: the inputs' own, or
    RT-DETR's float32 buffer."""
    return tuple(dict.fromkeys((dtype, UPSTREAM_BOX_DTYPE)))


# --- 1. structure ---------------------------------------------------------------------


def check_structure(trial):
    """Four outputs; (None,)*4 when num_denoising <= 0; for an all-empty batch one of the
    known conventions (:mod:`dnspec.contract.conventions`: four Nones, a dummy group, meta only, an
    empty group), consistent with itself (and four Nones when ``--convention rtdetr``
    asks for RT-DETR's); otherwise shapes [bs,N,D], [bs,N,4], a mask in one of the
    layouts of :mod:`dnspec.contract.mask_layouts` (RT-DETR's [N+Q,N+Q] bool, per head,
    SDPA's broadcast, or additive float; the convention is recorded on the trial),
    class queries in the embedding's dtype and boxes in the boxes' dtype or in float32
    (RT-DETR's buffer), all on the inputs' device; dn_num_split == [N, Q] and
    dn_num_group == max(1, num_denoising // max_gt)."""
    case = trial.case
    outputs = raw_outputs_of(trial)
    layout = layout_of(case)
    if case.num_denoising <= 0:
        if any(o is not None for o in outputs):
            fail(
                f"expected (None, None, None, None) for num_denoising={case.num_denoising} (denoising off); got "
                f"{tuple(type(o).__name__ for o in outputs)}",
                "structure.none_outputs",
            )
        return
    if not layout.produces_output:
        _check_empty_batch(trial, outputs)
        return
    query_class, query_bbox, attn_mask, meta = outputs
    if query_class is None:
        fail("returned None outputs for a batch with boxes and num_denoising > 0", "structure.none_outputs")
    n, q, bs, d = layout.num_dn_rows, case.num_queries, case.batch_size, case.embed_dim
    expected = {
        "input_query_class": (query_class, (bs, n, d), (case.dtype,)),
        "input_query_bbox": (query_bbox, (bs, n, 4), accepted_box_dtypes(case.dtype)),
    }
    for name, (value, shape, dtypes) in expected.items():
        if not isinstance(value, torch.Tensor):
            fail(f"{name} is {type(value).__name__}, expected a tensor", f"structure.{name}.type")
        if tuple(value.shape) != shape:
            fail(
                f"{name} has shape {list(value.shape)}, expected {list(shape)} (N={n}, Q={q}, bs={bs}, D={d})",
                f"structure.{name}.shape",
            )
        if value.dtype not in dtypes:
            fail(
                f"{name} has dtype {value.dtype}, expected {' or '.join(str(t) for t in dtypes)}"
                + (" (the inputs' dtype, or RT-DETR's float32 buffer)" if len(dtypes) > 1 else ""),
                f"structure.{name}.dtype",
            )
    read = read_layout(attn_mask, case, layout, trial.memo)
    if isinstance(read, Unreadable):
        fail(f"{read.message} (N={n}, Q={q}, bs={bs})", f"structure.attn_mask.{read.part}")
    if not read.ambiguous:
        trial.observations["mask"] = read.convention
    if not isinstance(meta, dict):
        fail(f"dn_meta is {type(meta).__name__}, expected a dict", "structure.dn_meta.type")
    missing = {"dn_positive_idx", "dn_num_group", "dn_num_split"} - set(meta)
    if missing:
        fail(f"dn_meta lacks {sorted(missing)}; has {sorted(meta)}", "structure.dn_meta.keys")
    if list(meta["dn_num_split"]) != layout.dn_num_split:
        fail(
            f"dn_num_split is {meta['dn_num_split']}, expected [N, Q] = {layout.dn_num_split}", "structure.dn_num_split"
        )
    if meta["dn_num_group"] != layout.num_groups:
        fail(
            f"dn_num_group is {meta['dn_num_group']}, expected max(1, {case.num_denoising} // {layout.max_gt}) "
            f"= {layout.num_groups}",
            "structure.dn_num_group",
        )


def _check_empty_batch(trial, outputs) -> None:
    """An all-empty batch: recognise the convention, record it on the trial, and judge
    it for consistency (each problem its own check id) and against a required one."""
    from dnspec.contract import conventions

    recognised = conventions.recognise(outputs, trial.case)
    if recognised is None:
        fail(
            f"for a batch with no boxes got {tuple(_describe(o) if o is not None else 'None' for o in outputs)}: "
            f"none of the known conventions ({', '.join(conventions.TITLES)})",
            "structure.empty_batch",
        )
    trial.observations["empty_batch"] = recognised.convention
    failures = [
        PropertyViolation(
            f"empty-batch convention {recognised.convention}: {message}",
            f"structure.empty_batch.{recognised.convention}.{problem}",
        )
        for problem, message in recognised.problems
    ]
    required = trial.required_convention
    if required and recognised.convention != required and not failures:
        failures.append(
            PropertyViolation(
                f"for a batch with no boxes it returns {conventions.TITLES[recognised.convention]}, but "
                f"{conventions.TITLES[required]} is required (--convention)",
                "structure.empty_batch.convention",
            )
        )
    raise_all(failures)


def produced_outputs(trial, key: CallKey = CallKey()):
    """Outputs of a call that must produce some, of the shapes the layout gives, for a
    check that reads them row by row. What breaks that is the structure property's
    failure, raised with its check id, so that one wrong shape (ultralytics subsamples
    boxes to num_denoising, say) is one divergence, not one per property that reads it."""
    outputs = outputs_of(trial, key)
    case = trial.case_for(key)
    if outputs[0] is None:
        fail("returned None outputs for a batch with boxes and num_denoising > 0", "structure.none_outputs", case)
    layout = layout_of(case)
    n, q = layout.num_dn_rows, case.num_queries
    for name, value, shape in zip(
        ("input_query_class", "input_query_bbox", "attn_mask"),
        outputs[:3],
        ((case.batch_size, n, case.embed_dim), (case.batch_size, n, 4), (n + q, n + q)),
        strict=True,
    ):
        if not isinstance(value, torch.Tensor):
            fail(f"{name} is {type(value).__name__}, expected a tensor", f"structure.{name}.type", case)
        if tuple(value.shape) != shape:
            fail(
                f"{name} has shape {list(value.shape)}, expected {list(shape)} (N={n}, Q={q}, bs={case.batch_size}, "
                f"D={case.embed_dim})",
                f"structure.{name}.shape",
                case,
            )
    if not isinstance(outputs[3], dict):
        fail(f"dn_meta is {type(outputs[3]).__name__}, expected a dict", "structure.dn_meta.type", case)
    return outputs


# --- 3. positive index lists ----------------------------------------------------------


def check_positive_indices(trial):
    """dn_positive_idx holds one int64 tensor per image, equal to the positive rows of
    that image's real boxes in every group, ascending: length n_i * G, never a padding
    or negative row."""
    case = trial.case
    layout = layout_of(case)
    if not layout.produces_output:
        return
    meta = produced_outputs(trial)[3]
    idx = meta["dn_positive_idx"]
    if not isinstance(idx, (list, tuple)) or len(idx) != case.batch_size:
        fail(
            f"dn_positive_idx has {len(idx) if hasattr(idx, '__len__') else type(idx).__name__} entries, "
            f"expected one per image ({case.batch_size})",
            "positive_indices.count",
        )
    negative = layout.row_is_negative()
    for i, (got, expected) in enumerate(zip(idx, layout.positive_idx(), strict=True)):
        if not isinstance(got, torch.Tensor) or got.dtype != torch.int64:
            fail(
                f"dn_positive_idx[{i}] is {getattr(got, 'dtype', type(got).__name__)}, expected an int64 tensor",
                "positive_indices.type",
            )
        got = got.cpu()
        if torch.equal(got, expected):
            continue
        bad = [int(r) for r in got if not 0 <= int(r) < layout.num_dn_rows]
        if bad:
            fail(
                f"dn_positive_idx[{i}] holds {bad[0]}, outside the {layout.num_dn_rows} dn rows",
                "positive_indices.out_of_range",
            )
        for r in got.tolist():
            if negative[r]:
                fail(
                    f"dn_positive_idx[{i}] holds row {r}, a negative row (group {r // (2 * layout.max_gt)})",
                    "positive_indices.negative_row",
                )
            if r % layout.max_gt >= case.counts[i]:
                fail(
                    f"dn_positive_idx[{i}] holds row {r}, a padding row (image {i} has {case.counts[i]} boxes)",
                    "positive_indices.padding_row",
                )
        fail(
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
    query_class = produced_outputs(trial)[0]
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
            fail(
                f"input_query_class[{i}, {r}] is not a row of class_embed.weight (nearest: class {int(labels[i, r])})",
                "class_queries.not_embedding_row",
            )

    def padding():
        wrong = (~real) & (labels != case.num_classes)
        if bool(wrong.any()):
            i, r = first(wrong)
            fail(
                f"padding row {r} of image {i} carries class {int(labels[i, r])}, expected num_classes = {case.num_classes}",
                "class_queries.padding_class",
            )

    def real_range():
        wrong = real & (labels >= case.num_classes)
        if bool(wrong.any()):
            i, r = first(wrong)
            fail(
                f"real row {r} of image {i} carries class {int(labels[i, r])}, outside [0, {case.num_classes})",
                "class_queries.real_class_range",
            )

    def exact_labels():
        if case.label_noise_ratio != 0:
            return
        changed = real & (labels != gt_labels)
        if bool(changed.any()):
            i, r = first(changed)
            fail(
                f"label_noise_ratio is 0 but real row {r} of image {i} carries class {int(labels[i, r])} "
                f"instead of its label {int(gt_labels[i, r])}",
                "class_queries.label_at_ratio_0",
            )

    judge_separately(not_rows, padding, real_range, exact_labels)


# --- 6. inputs untouched ----------------------------------------------------------------


def check_inputs_untouched(trial):
    """The caller's targets (list, dicts, labels and boxes tensors) and class_embed's
    weights are bit-identical after the (main) call."""
    case = trial.case
    trial.outputs()
    targets, class_embed = trial.main_args[0], trial.main_args[3]
    before = case.targets
    if len(targets) != len(before):
        fail(f"the targets list changed length from {len(before)} to {len(targets)}", "inputs_untouched.targets")
    for i, (t, b) in enumerate(zip(targets, before, strict=True)):
        if set(t) != set(b):
            fail(f"targets[{i}] keys changed from {sorted(b)} to {sorted(t)}", "inputs_untouched.targets")
        for key in b:
            if t[key].dtype != b[key].dtype or t[key].shape != b[key].shape or not torch.equal(t[key], b[key]):
                fail(f"targets[{i}][{key!r}] was modified by the call", "inputs_untouched.targets")
    if not torch.equal(class_embed.weight.detach(), trial.weight):
        fail("class_embed.weight was modified by the call", "inputs_untouched.class_embed")


# --- 7. determinism ---------------------------------------------------------------------


def assert_outputs_equal(a, b, what: str, tolerance=None, check: str = "outputs", case=None):
    """Four outputs equal: exactly, or, when ``tolerance`` (a
    :class:`~dnspec.contract.tolerances.Tolerance`) is given, class queries within its ``embed``
    and boxes (compared in box space by the callers) within its ``box`` entry. A failure's
    check id is ``check`` + the output that differs (``.attn_mask``, ``.dn_meta``, ...)."""
    if (a[0] is None) != (b[0] is None):
        fail(f"{what}: one call returned None outputs and the other did not", f"{check}.none", case)
    if a[0] is None:
        return
    names = ("input_query_class", "input_query_bbox", "attn_mask")
    for name, x, y, atol in zip(
        names,
        a[:3],
        b[:3],
        (None if tolerance is None else tolerance.embed, None if tolerance is None else tolerance.box, None),
        strict=False,  # outputs that are not four were judged by the structure check
    ):
        x, y = x.detach().cpu(), y.detach().cpu()
        if x.shape != y.shape:
            fail(f"{what}: {name} shapes differ: {list(x.shape)} vs {list(y.shape)}", f"{check}.{name}.shape", case)
        if atol is None:
            equal = torch.equal(x, y.to(x.dtype))
        else:
            equal = torch.allclose(x.double(), y.double(), rtol=0, atol=atol)
        if not equal:
            diff = (x.double() - y.double()).abs() if x.dtype != torch.bool else (x != y).double()
            at = tuple(int(v) for v in (diff == diff.max()).nonzero()[0])
            fail(
                f"{what}: {name} differs at {list(at)}: {x[at].tolist()} vs {y[at].tolist()} (max |diff| {float(diff.max())})",
                f"{check}.{name}",
                case,
            )
    ma, mb = a[3], b[3]
    if ma["dn_num_group"] != mb["dn_num_group"] or list(ma["dn_num_split"]) != list(mb["dn_num_split"]):
        fail(
            f"{what}: dn_num_group/dn_num_split differ: {ma['dn_num_group']}, {ma['dn_num_split']} vs "
            f"{mb['dn_num_group']}, {mb['dn_num_split']}",
            f"{check}.dn_meta",
            case,
        )
    same_positive_indices(ma, mb, what, check, case)


def same_positive_indices(ma: dict, mb: dict, what: str, check: str, case=None) -> None:
    """The two dn_meta's ``dn_positive_idx`` lists are equal, list by list (dtype, shape,
    values); None (an empty group's, as Dome-DETR builds it for an all-empty batch: the
    structure check judges that convention) equals only None."""
    pa, pb = ma.get("dn_positive_idx"), mb.get("dn_positive_idx")
    if pa is None or pb is None:
        if (pa is None) != (pb is None):
            fail(f"{what}: dn_positive_idx is None in one call only", f"{check}.dn_positive_idx", case)
        return
    if len(pa) != len(pb):
        fail(f"{what}: dn_positive_idx lengths differ", f"{check}.dn_positive_idx", case)
    for i, (x, y) in enumerate(zip(pa, pb, strict=True)):
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x.cpu(), y.cpu()):
            fail(
                f"{what}: dn_positive_idx[{i}] differs: {x.tolist()} vs {y.tolist()}", f"{check}.dn_positive_idx", case
            )


def check_determinism(trial):
    """Two calls after the same torch.manual_seed give identical outputs."""
    first = outputs_of(trial)
    second = outputs_of(trial, CallKey(repeat=1))
    assert_outputs_equal(first, second, "two calls with the same seed", check="determinism")


# --- 8. differential --------------------------------------------------------------------


def check_noiseless_matches_reference(trial):
    """With label_noise_ratio == 0 and box_noise_scale == 0 the call is deterministic and
    equals the reference's output exactly (boxes compared through the sigmoid, within
    the dtype's tolerance, for implementations that return logits at scale 0, by
    declaration or as read off the output: :func:`returns_logits`; boxes in
    float32, RT-DETR's buffer, compared at the inputs' dtype's tolerance). An all-empty
    batch is left to the structure check, which judges it by its convention."""
    key = CallKey(config=NOISE_FREE)
    case = trial.case_for(key)
    if case.num_denoising > 0 and not layout_of(case).produces_output:
        return
    got = outputs_of(trial, key)
    expected = oracle_outputs(trial, key)
    check = "noiseless_matches_reference"
    if got[0] is not None and expected[0] is not None:
        observe_space_at_scale_0(trial, case, got[1])
        if returns_logits(case, got[1], trial.impl.fixes_advisories):
            _compare_logits_at_scale_0(got, expected, "noise-free output vs the reference", check, case)
            return
        if got[1] is not None and getattr(got[1], "dtype", None) != expected[1].dtype:
            # RT-DETR's float32 buffer for inputs in another dtype: the values, at the inputs' tolerance
            tolerance = replace(tolerance_for(case.dtype), embed=0.0)
            assert_outputs_equal(got, expected, "noise-free output vs the reference", tolerance, check, case)
            return
    assert_outputs_equal(got, expected, "noise-free output vs the reference", check=check, case=case)


def check_injected_noise_matches_reference(trial):
    """For an implementation that accepts an injected draw: under the same NoiseDraw its
    outputs equal the reference's bit for bit (at box_noise_scale 0, boxes returned as
    logits are compared through the sigmoid, as in the noise-free check)."""
    if not layout_of(trial.case).produces_output:
        return
    key = CallKey(injected=True)
    got = outputs_of(trial, key)
    expected = oracle_outputs(trial, key)
    case, what, check = (
        trial.case_for(key),
        "output under an injected draw vs the reference",
        "injected_noise_matches_reference",
    )
    if case.box_noise_scale == 0 and got[0] is not None and returns_logits(case, got[1], trial.impl.fixes_advisories):
        _compare_logits_at_scale_0(got, expected, what, check, case)
        return
    assert_outputs_equal(got, expected, what, check=check, case=case)


def _compare_logits_at_scale_0(got, expected, what: str, check: str, case) -> None:
    """Outputs whose boxes are logits at box_noise_scale 0 against the oracle's box-space
    ones: the boxes through the sigmoid, within the dtype's decoded-box tolerance."""
    got = (got[0], got[1].detach().to(torch.float64).sigmoid().to(got[1].dtype), got[2], got[3])
    tolerance = replace(tolerance_for(case.dtype), box=decoded_box_tolerance(case.dtype, logit_space=True))
    assert_outputs_equal(got, expected, what, tolerance, check, case)


def observe_space_at_scale_0(trial, case, bbox) -> None:
    """Record on the trial the space of a box output at box_noise_scale 0 when it can be
    told (for an implementation that does not declare ``fixes_advisories``, which must
    return logits there): a builder that returns both is reported by the runner."""
    if case.box_noise_scale == 0 and not trial.impl.fixes_advisories:
        seen = scale_0_space(case, bbox)
        if seen is not None:
            trial.observations["box_space_at_scale_0"] = seen


# --- 9. the oracle: the contract's reference, or THEIRS (--against) ------------------------


def oracle_outputs(trial, key: CallKey | None = None):
    """What the differential checks compare with: the trial's oracle (the contract's
    reference, or THEIRS under ``--against``). Where THEIRS raises, the call is judged by
    the contract alone (its reference), and the trial notes it (``against_raised``): a
    builder that fixes THEIRS' crash is never failed for it."""
    try:
        return trial.reference(key or CallKey())
    except AssertionError:  # ImplementationError of THEIRS (dnspec's reference does not raise)
        if trial.oracle is None:
            raise
        trial.observations["against_raised"] = "yes"
        return trial.lineage_reference(trial.contract, key or CallKey())


def same_seed_comparison(trial) -> bool | None:
    """Whether the main call's outputs equal the oracle's under the same torch seed
    (None when either raised: nothing to compare there)."""
    try:
        got = trial.outputs()
        expected = trial.reference()
    except AssertionError:
        return None
    try:
        assert_outputs_equal(got, expected, "same seed")
    except Exception:  # whatever the outputs are, they are not the oracle's numbers
        return False
    return _same_convention(trial, got, expected)


def _same_convention(trial, got, expected) -> bool:
    """For an all-empty batch, whether both answer with the same convention (four Nones
    and meta only look alike to assert_outputs_equal, which stops at the None outputs)."""
    case = trial.case
    if case.num_denoising <= 0 or layout_of(case).produces_output:
        return True
    a, b = _recognised(got, case), _recognised(expected, case)
    return a is not None and b is not None and a.convention == b.convention and not a.problems


def _recognised(outputs, case):
    """The empty-batch convention of ``outputs``, or None for outputs that are none (or
    not even four outputs: the structure check reports those)."""
    from dnspec.contract import conventions

    try:
        return conventions.recognise(tuple(outputs), case)
    except Exception:  # a malformed output is no convention
        return None


def lineage_matches(trial) -> dict[str, bool] | None:
    """Lineage recognition on the main call: for each lineage contract
    (:mod:`dnspec.contract.lineages`), whether the outputs equal that lineage's reference
    under the same torch seed (None when the call raised). It reuses the same-seed call
    already made: an all-empty batch is told apart by its convention alone; otherwise the
    lineages differ only in crossed negatives, so the keep-|w| reference is called only
    when RT-DETR's has a collapsed side (a side logit of exactly inverse_sigmoid(0), which
    every crossed side gives); without one, both references are the same numbers."""
    from dnspec.contract import lineages
    from dnspec.contract.boxes import inverse_sigmoid

    try:
        got = trial.outputs()
    except AssertionError:
        return None
    case = trial.case
    if case.num_denoising > 0 and not layout_of(case).produces_output:
        seen = _recognised(got, case)
        convention = seen.convention if seen is not None and not seen.problems else None
        return {name: c.empty_batch == convention for name, c in lineages.CONTRACTS.items()}
    collapse = trial.reference() if trial.oracle is None and not trial.contract.crossed_keep_side else None
    if collapse is None:
        collapse = trial.lineage_reference(lineages.get("rtdetr"))
    keep = collapse
    if collapse[1] is not None and case.box_noise_scale > 0:
        clamped = inverse_sigmoid(torch.zeros((), dtype=collapse[1].dtype, device=collapse[1].device))
        if bool((collapse[1][..., 2:] == clamped).any()):
            keep = trial.lineage_reference(lineages.get("dfine"))

    def same(expected) -> bool:
        try:
            assert_outputs_equal(got, expected, "same seed")
        except Exception:
            return False
        return True

    same_collapse, same_keep = same(collapse), (same(keep) if keep is not collapse else None)
    if same_keep is None:
        same_keep = same_collapse
    return {name: same_keep if c.crossed_keep_side else same_collapse for name, c in lineages.CONTRACTS.items()}
