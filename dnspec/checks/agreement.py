"""Device and dtype agreement: the same inputs give the same answer everywhere.

Deterministic outputs (mask, positive indices, group count, split) must be exactly equal
across devices under the case's own configuration, and so must the whole noise-free
output (ratio 0 and scale 0); for implementations that accept an injected draw, every
output must agree under the same draw, within the dtype's tolerance. Each of these parts
is judged on its own, so a crash at scale 0 does not hide the other two.

Across dtypes, class queries come back in the inputs' dtype and boxes in the inputs'
dtype or in float32 (RT-DETR allocates its box buffer as float32 whatever the inputs'
dtype), and the outputs agree with the float64 run within the tolerance of
:mod:`dnspec.contract.tolerances` for the less precise of the two dtypes: under one injected draw
when the implementation takes one, else under the same ``torch.manual_seed`` (RT-DETR
draws its box noise in the dtype of its float32 buffer, so the same seed gives the same
noise in every input dtype; an implementation that draws in the inputs' dtype instead has
its boxes held to the noise bounds in that dtype).

Boxes are compared decoded (sigmoid of the logits), from the space each call returned
them in (at box_noise_scale 0, box space as RT-DETR's or logits as forks that fix advisory
box_output_space return: read off the output): near the clamp of inverse_sigmoid a tiny
difference in a side moves its logit a lot and its box not at all.
"""

from __future__ import annotations

import torch

from dnspec.calling.trial import NOISE_FREE, CallKey
from dnspec.checks.box_checks import box_noise_bounds_ok, crossed_keeps_side
from dnspec.checks.invariants import (
    accepted_box_dtypes,
    assert_outputs_equal,
    layout_of,
    outputs_of,
    returns_logits,
    same_positive_indices,
)
from dnspec.checks.violations import PropertyViolation, judge_separately
from dnspec.contract.decode import decode_boxes, expects_logit_space
from dnspec.contract.tolerances import decoded_box_tolerance, tolerance_for


def available_devices() -> list[str]:
    """Device types torch can use here: always cpu, plus cuda and mps when present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def _in_box_space(outputs, case, impl):
    """The outputs with their boxes decoded from the space this call returned them in
    (:func:`~dnspec.checks.invariants.returns_logits`: logits at scale 0 too for a builder
    that returns them there)."""
    if outputs[0] is None:
        return outputs
    logit = returns_logits(case, outputs[1], impl.fixes_advisories)
    return (outputs[0], decode_boxes(outputs[1].detach().cpu(), logit), outputs[2], outputs[3])


def _check_place(outputs, case, what, check):
    """Outputs on the inputs' device; class queries in the inputs' dtype; boxes in an
    accepted box dtype."""
    if outputs[0] is None:
        return
    for name, value, dtypes in (
        ("input_query_class", outputs[0], (case.dtype,)),
        ("input_query_bbox", outputs[1], accepted_box_dtypes(case.dtype)),
    ):
        if value.device.type != torch.device(case.device).type:
            raise PropertyViolation(
                f"{what}: {name} is on {value.device}, the inputs on {case.device}", f"{check}.place", case
            )
        if value.dtype not in dtypes:
            raise PropertyViolation(
                f"{what}: {name} has dtype {value.dtype}; expected {' or '.join(str(d) for d in dtypes)}"
                + (" (the inputs' dtype, or RT-DETR's float32 buffer)" if len(dtypes) > 1 else " (the inputs' dtype)"),
                f"{check}.dtype",
                case,
            )
    if outputs[2].device.type != torch.device(case.device).type:
        raise PropertyViolation(
            f"{what}: attn_mask is on {outputs[2].device}, the inputs on {case.device}", f"{check}.place", case
        )


def _same_layout(a, b, what, check, case=None):
    """Mask and dn_meta exactly equal (what no random draw changes); a ``dn_positive_idx``
    of None (an empty group's, as Dome-DETR builds it) is equal only to None."""
    if (a[0] is None) != (b[0] is None):
        raise PropertyViolation(f"{what}: one call returned None outputs and the other did not", f"{check}.none", case)
    if a[0] is None:
        return
    if a[2].shape != b[2].shape or not torch.equal(a[2].cpu(), b[2].cpu()):
        raise PropertyViolation(f"{what}: attn_mask differs", f"{check}.attn_mask", case)
    ma, mb = a[3], b[3]
    if ma["dn_num_group"] != mb["dn_num_group"] or list(ma["dn_num_split"]) != list(mb["dn_num_split"]):
        raise PropertyViolation(f"{what}: dn_num_group/dn_num_split differ", f"{check}.dn_meta", case)
    same_positive_indices(ma, mb, what, check, case)


def check_device_agreement(trial, device: str):
    """``impl`` on ``device`` agrees with ``impl`` on the CPU (``device`` may be cpu: then
    two CPU runs, which still catches nondeterminism). Three parts, each judged on its
    own: the case's own configuration gives the same mask and dn_meta (the parts no
    random draw changes); the noise-free call gives the same outputs exactly (their boxes
    within the dtype's tolerance when they are logits, as for an implementation that
    fixes the advisories or returns logits at scale 0: log may differ by an ulp across
    devices); with an injected
    draw, everything agrees within the dtype's tolerance. Outputs are on the device."""
    impl, case = trial.impl, trial.case
    check = "device_agreement"
    repeat = 1 if device == "cpu" else 0

    def own_configuration():
        a = outputs_of(trial, CallKey(device="cpu"))
        key = CallKey(device=device, repeat=repeat)
        b = outputs_of(trial, key)
        _check_place(b, trial.case_for(key), f"call on {device}", check)
        _same_layout(a, b, f"output on cpu vs {device}", check, trial.case_for(key))

    def noise_free():
        key = CallKey(config=NOISE_FREE, device=device, repeat=repeat)
        a = outputs_of(trial, CallKey(config=NOISE_FREE, device="cpu"))
        b = outputs_of(trial, key)
        quiet = trial.case_for(key)
        _check_place(b, quiet, f"noise-free call on {device}", check)
        if any(returns_logits(quiet, o[1], impl.fixes_advisories) for o in (a, b) if o[0] is not None):
            assert_outputs_equal(
                _in_box_space(a, quiet, impl),
                _in_box_space(b, quiet, impl),
                f"noise-free output on cpu vs {device}",
                tolerance_for(case.dtype),
                check,
                quiet,
            )
        else:
            assert_outputs_equal(a, b, f"noise-free output on cpu vs {device}", check=check, case=quiet)

    def injected():
        if not (impl.accepts_noise and layout_of(case).produces_output):
            return
        key = CallKey(injected=True, device=device, repeat=repeat)
        a = outputs_of(trial, CallKey(injected=True, device="cpu"))
        b = outputs_of(trial, key)
        _check_place(b, trial.case_for(key), f"call on {device}", check)
        assert_outputs_equal(
            _in_box_space(a, case, impl),
            _in_box_space(b, case, impl),
            f"output under one draw on cpu vs {device}",
            tolerance_for(case.dtype),
            check,
            trial.case_for(key),
        )

    judge_separately(own_configuration, noise_free, injected)


def check_dtype_agreement(trial, dtype: torch.dtype):
    """``impl`` with boxes and embedding in ``dtype`` returns class queries in ``dtype``
    and boxes in ``dtype`` or float32, agreeing with its float64 run within the tolerance
    of ``dtype`` (the less precise of the two): under one injected draw when the
    implementation accepts one, else under the same torch seed (see the module docstring
    for an implementation that draws its noise in the inputs' dtype)."""
    impl, case = trial.impl, trial.case
    injected = impl.accepts_noise and layout_of(case).produces_output
    wide_key, narrow_key = CallKey(dtype=torch.float64, injected=injected), CallKey(dtype=dtype, injected=injected)
    narrow_case = trial.case_for(narrow_key)
    a = outputs_of(trial, wide_key)
    b = outputs_of(trial, narrow_key)
    check = "dtype_agreement"
    _check_place(b, narrow_case, f"call in {dtype}", check)
    what = f"output in {dtype} vs float64"
    tolerance = tolerance_for(dtype)
    wide, narrow = _in_box_space(a, case, impl), _in_box_space(b, case, impl)
    try:
        assert_outputs_equal(narrow, wide, what, tolerance, check, narrow_case)
    except PropertyViolation as violation:
        if injected or not violation.check.endswith(".input_query_bbox") or case.box_noise_scale == 0:
            raise
        # the same seed, but the box noise drawn in the inputs' dtype: the boxes must still
        # be reachable from the ground truth in that dtype; everything else must agree
        assert_outputs_equal((narrow[0], wide[1], *narrow[2:]), wide, what, tolerance, check, narrow_case)
        logit = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
        ok = box_noise_bounds_ok(
            narrow_case,
            layout_of(narrow_case),
            narrow[1],
            crossed_keeps_side(trial),
            decoded_box_tolerance(dtype, logit),
        )
        if not bool(ok.all()):
            raise


# --- two builders, one distribution (--against) --------------------------------------------


def two_sample_failures(mine, theirs, seed: int, device: str = "cpu") -> list[str]:
    """Whether two builders draw the same noise, from the statistical workloads of
    :mod:`dnspec.checks.distributions` (fixed seeded batches; each builder on its own seed,
    so draws that line up prove nothing here): per role, the label-flip counts (Fisher's
    exact test on the 2x2 table); per role, the box-noise magnitudes (two-sample KS); per
    corner coordinate, the signs (Fisher). Eight tests at alpha 1e-6 in all (1e-6 / 8
    each). Returns one line per test that fails (empty: the same distributions)."""
    from scipy import stats

    from dnspec.checks.distributions import FALSE_ALARM, box_magnitude_samples, label_flip_samples

    alpha = FALSE_ALARM / 8
    failures = []
    flips = label_flip_samples(mine, seed, device), label_flip_samples(theirs, seed + 1, device)
    for role in ("positive", "negative"):
        a, b = flips[0]["roles"][role], flips[1]["roles"][role]
        table = [[a["changed"], a["total"] - a["changed"]], [b["changed"], b["total"] - b["changed"]]]
        p = float(stats.fisher_exact(table).pvalue)
        if p < alpha:
            failures.append(
                f"label flips on {role} rows: {a['changed']}/{a['total']} vs {b['changed']}/{b['total']} (p = {p:.3g})"
            )
    boxes = box_magnitude_samples(mine, seed, device), box_magnitude_samples(theirs, seed + 1, device)
    for role in ("positive", "negative"):
        a, b = boxes[0]["magnitudes"][role]["values"], boxes[1]["magnitudes"][role]["values"]
        result = stats.ks_2samp(a, b)
        if result.pvalue < alpha:
            shift = boxes[0]["magnitudes"][role]["shift"]
            failures.append(
                f"box-noise magnitudes on {role} rows: in [{a.min() + shift:.3g}, {a.max() + shift:.3g}] vs "
                f"[{b.min() + shift:.3g}, {b.max() + shift:.3g}] (two-sample KS p = {float(result.pvalue):.3g})"
            )
    for name in ("x1", "y1", "x2", "y2"):
        a, b = boxes[0]["signs"][name], boxes[1]["signs"][name]
        table = [[a["up"], a["total"] - a["up"]], [b["up"], b["total"] - b["up"]]]
        p = float(stats.fisher_exact(table).pvalue)
        if p < alpha:
            failures.append(
                f"box-noise signs on {name}: {a['up']}/{a['total']} vs {b['up']}/{b['total']} up (p = {p:.3g})"
            )
    return failures
