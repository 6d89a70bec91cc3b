"""Pictures of what failed, drawn with matplotlib (the ``plot`` extra).

A failing attention mask or box bound is easier to see than to read. For each
divergence of a verify run, :func:`divergence_pictures` calls the live implementation
again on the divergence's minimal example (``divergence.example_case``, under a time
limit) and draws what the property saw:

``mask``       the expected attention mask (:mod:`dnspec.contract.layout`) and the returned one side
               by side, the wrong cells highlighted, group boundaries drawn, large masks
               down-sampled in blocks;
``boxes``      for the offending row: the ground-truth box, the regions where positive and
               negative corners may land after the clip, and the returned box;
``positive``   expected and returned positive rows per image, as strips;
``classes``    expected and returned class per row, as strips;
``stats``      the observed samples of a statistical property (empirical CDF, histogram or
               contingency residuals) against the expected distribution, with p-values;
``inputs``     the minimal example's ground-truth boxes, for a crash, a hang or a
               property that has no picture of its own.

Nothing here raises into a report: a picture that cannot be drawn becomes a
:class:`Picture` with a ``note`` saying why. matplotlib is imported only when a picture
is drawn (never when ``dnspec verify`` starts), through the Agg canvas of
``matplotlib.figure.Figure`` (no pyplot, no GUI backend, no global state).

This package ties a run's divergences to pictures (which picture, calling the
implementation again, the notes); each picture is drawn by a module of its own:
:mod:`~dnspec.reports.pictures.mask`, :mod:`~dnspec.reports.pictures.box_rows`,
:mod:`~dnspec.reports.pictures.strips`, :mod:`~dnspec.reports.pictures.statistics`,
:mod:`~dnspec.reports.pictures.inputs` and :mod:`~dnspec.reports.pictures.demo` (``dnspec demo --plot``),
on what :mod:`~dnspec.reports.pictures.figures` shares.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

from dnspec.reports.pictures.box_rows import box_row_data, draw_box_row, offending_box_row
from dnspec.reports.pictures.inputs import draw_inputs
from dnspec.reports.pictures.mask import draw_mask
from dnspec.reports.pictures.statistics import draw_statistics
from dnspec.reports.pictures.strips import (
    class_strip_data,
    draw_class_strips,
    draw_positive_strips,
    positive_strip_data,
)

PLOT_EXTRA = "pip install 'dnspec[plot]'"


@dataclass
class Picture:
    """One picture of a divergence: a PNG, or a note saying why there is none."""

    title: str
    caption: str = ""
    png: bytes | None = None
    note: str = ""


@dataclass
class Pictures:
    """The pictures of one run, by divergence number; ``unavailable`` says why there are
    none at all (matplotlib missing)."""

    by_divergence: dict = field(default_factory=dict)
    unavailable: str = ""


def plot_problem() -> str:
    """'' when matplotlib can be imported, else one line naming the extra that adds it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"matplotlib is not installed ({PLOT_EXTRA} adds it)"
    return ""


MASK, BOXES, POSITIVE_KIND, CLASSES, STATS, INPUTS = "mask", "boxes", "positive", "classes", "stats", "inputs"
PROPERTY_KIND = {"attention_mask": MASK, "boxes": BOXES, "positive_indices": POSITIVE_KIND, "class_queries": CLASSES}


def picture_kind(divergence) -> str:
    """Which picture shows a divergence best (see the module docstring)."""
    from dnspec.checks.distributions import SAMPLES
    from dnspec.running.divergences import DIFFERENTIAL, FIELD_PROPERTY, VIOLATES

    signature = divergence.signature
    if signature.kind != VIOLATES:
        return INPUTS
    key = signature.key
    prefix = key.split(".")[0]
    if prefix in DIFFERENTIAL:
        prefix = FIELD_PROPERTY.get(key.rsplit(".", 1)[-1], "structure")
    if prefix in PROPERTY_KIND:
        return PROPERTY_KIND[prefix]
    if prefix == "structure" and "attn_mask" in key:
        return MASK
    label = (divergence.example_label or divergence.representative.label).split("[")[0]
    if label in SAMPLES or prefix in SAMPLES:
        return STATS
    return INPUTS


@contextlib.contextmanager
def _call_limit(seconds):
    from dnspec.calling import call as calling

    previous = calling.DEFAULT_TIME_LIMIT_S_ACTIVE
    calling.DEFAULT_TIME_LIMIT_S_ACTIVE = seconds
    try:
        yield
    finally:
        calling.DEFAULT_TIME_LIMIT_S_ACTIVE = previous


def _outputs_problem(outputs) -> str:
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        return f"calling it again returned {type(outputs).__name__}, not 4 outputs"
    if outputs[0] is None:
        return "calling it again returned None outputs"
    return ""


def _call(impl, case, time_limit_s, differential: str = ""):
    """(outputs, reference outputs or None, problem): the implementation's outputs on
    ``case`` (for a differential divergence, the call the differential check makes, and
    the reference's outputs on the same call), or a one-line reason why there are none."""
    from dnspec.calling.trial import CallKey, Trial

    key = CallKey(injected=True) if differential == "injected_noise_matches_reference" else CallKey()
    trial = Trial(impl, case)
    try:
        with _call_limit(time_limit_s):
            outputs = trial.outputs(key)
            reference = trial.reference(key) if differential else None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # ImplementationError, or whatever escaped it
        return None, None, f"calling it again on the example raised: {error}"
    problem = _outputs_problem(outputs)
    return (None, None, problem) if problem else (outputs, reference, "")


def _reference_mask(reference, layout):
    return reference[2].detach().cpu().bool() if reference is not None else layout.attn_mask()


def _mask_picture(impl, case, outputs, reference, title: str, name: str) -> Picture:
    import torch

    from dnspec.checks.invariants import layout_of

    got = outputs[2]
    if not isinstance(got, torch.Tensor) or got.dim() != 2:
        return Picture(
            title,
            note=f"not drawn: attn_mask is {type(got).__name__}"
            + (f" of shape {list(got.shape)}" if isinstance(got, torch.Tensor) else ""),
        )
    layout = layout_of(case)
    expected = _reference_mask(reference, layout)
    source = "the reference's" if reference is not None else "dnspec.contract.layout's"
    return Picture(
        title,
        f"{layout.num_dn_rows} dn rows in {layout.num_groups} groups of 2*max_gt = {2 * layout.max_gt}, "
        f"{case.num_queries} object queries; expected: {source} mask",
        draw_mask(
            expected.numpy(),
            got.detach().cpu().bool().numpy(),
            num_dn=layout.num_dn_rows,
            group_width=2 * layout.max_gt,
            impl_name=name,
            heading=title,
        ),
    )


def _reference_row(case, outputs, reference, impl):
    """(image, row, axis) of the first real row whose decoded box differs from the
    reference's most, or None."""
    from dnspec.checks.invariants import layout_of
    from dnspec.contract.decode import decode_boxes, expects_logit_space

    layout = layout_of(case)
    decoded = decode_boxes(outputs[1].detach().cpu(), expects_logit_space(case.box_noise_scale, impl.fixes_advisories))
    expected = decode_boxes(reference[1].detach().cpu(), expects_logit_space(case.box_noise_scale, False))
    if decoded.shape != expected.shape:
        return None
    diff = (decoded - expected).abs() * layout.real_rows()[..., None]
    if float(diff.max()) == 0:
        return None
    i, r, k = (int(v) for v in (diff == diff.max()).nonzero()[0])
    return i, r, k % 2


def _strip_picture(kind, case, outputs, reference, title: str, name: str) -> Picture:
    import torch

    if kind == POSITIVE_KIND:
        data = positive_strip_data(case, outputs, reference)
        return Picture(
            title,
            "expected: "
            + (
                "the reference's dn_positive_idx" if reference is not None else "dnspec.contract.layout's positive rows"
            ),
            draw_positive_strips(data, impl_name=name, heading=title),
        )
    if not isinstance(outputs[0], torch.Tensor) or outputs[0].dim() != 3:
        return Picture(title, note="not drawn: input_query_class is not a [bs, N, D] tensor")
    data = class_strip_data(case, outputs, reference)
    return Picture(
        title,
        "expected: "
        + (
            "the reference's classes on the same call"
            if reference is not None
            else "each row's ground-truth label (padding: num_classes)"
        ),
        draw_class_strips(data, impl_name=name, heading=title),
    )


def _differential(divergence) -> str:
    from dnspec.running.divergences import DIFFERENTIAL

    prefix = divergence.signature.key.split(".")[0]
    return prefix if prefix in DIFFERENTIAL else ""


def pictures_for(impl, divergence, *, seed=None, device: str = "cpu", time_limit_s=None) -> list[Picture]:
    """The pictures of one divergence, redrawn by calling ``impl`` again."""
    import torch

    from dnspec.checks.invariants import layout_of

    kind = picture_kind(divergence)
    name = getattr(impl, "name", "the implementation")
    case = divergence.example_case
    where = "the minimal example" if divergence.example_shrunk else "the example (as first found)"
    if kind == STATS:
        from dnspec.checks.distributions import DEFAULT_SEED, SAMPLES

        prop = (divergence.example_label or divergence.representative.label).split("[")[0]
        prop = prop if prop in SAMPLES else divergence.signature.key.split(".")[0]
        with _call_limit(time_limit_s):
            try:
                samples = SAMPLES[prop](impl, DEFAULT_SEED if seed is None else seed, device)
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                return [
                    Picture(
                        f"{prop}: observed vs expected", note=f"not drawn: running the workload again raised: {error}"
                    )
                ]
        return [
            Picture(
                f"{prop}: observed vs expected",
                "the samples the check tests, from its fixed seeded workload run again",
                draw_statistics(prop, samples, impl_name=name),
            )
        ]
    if case is None:
        return [
            Picture(
                "no picture",
                note="this divergence has no example call to redraw (it was seen on a fixed workload only)",
            )
        ]
    differential = _differential(divergence)
    outputs, reference, problem = _call(impl, case, time_limit_s, differential)
    if kind == INPUTS or outputs is None:
        what = (
            problem
            or "calling it again on the example returned outputs (what is wrong with them is in the message above)"
        )
        return [
            Picture(
                f"the inputs of {where}",
                what + ("; the inputs are drawn instead" if kind != INPUTS else ""),
                draw_inputs(case),
            )
        ]
    if differential:
        where += {
            "noiseless_matches_reference": " (noise-free call) vs the reference",
            "injected_noise_matches_reference": " (injected noise draw) vs the reference",
        }[differential]
    if kind == BOXES:
        if not isinstance(outputs[1], torch.Tensor) or outputs[1].dim() != 3 or outputs[1].shape[-1] != 4:
            return [Picture("boxes", note="not drawn: input_query_bbox is not a [bs, N, 4] tensor")]
        chosen = _reference_row(case, outputs, reference, impl) if reference is not None else None
        i, r, axis = chosen or offending_box_row(case, outputs, impl, divergence.example_message or divergence.title)
        data = box_row_data(case, outputs, impl, i, r, reference)
        return [
            Picture(
                f"boxes: the offending row of {where}",
                f"{data['role']} row {r} of image {i}: ground truth {[round(v, 4) for v in data['gt']]}, "
                f"returned {[round(v, 4) for v in data['got']]} (cxcywh, decoded)"
                + (f", the reference's {[round(v, 4) for v in data['reference']]}" if reference is not None else ""),
                draw_box_row(data, axis=axis, impl_name=name),
            )
        ]
    if kind == MASK:
        pictures = [_mask_picture(impl, case, outputs, reference, f"attention mask of {where}", name)]
    else:
        pictures = [
            _strip_picture(
                kind,
                case,
                outputs,
                reference,
                f"{'positive indices' if kind == POSITIVE_KIND else 'class queries'} of {where}",
                name,
            )
        ]
    # a minimal example is small; the case as first found often shows the pattern better
    first = divergence.representative.case
    if (
        first is not None
        and first is not case
        and layout_of(case).num_dn_rows < 12
        and layout_of(first).num_dn_rows > layout_of(case).num_dn_rows
    ):
        again, again_reference, _ = _call(impl, first, time_limit_s, differential)
        title = "the case as first found (larger, before shrinking)"
        if again is not None and kind == MASK:
            pictures.append(_mask_picture(impl, first, again, again_reference, f"attention mask of {title}", name))
        elif again is not None:
            pictures.append(
                _strip_picture(
                    kind,
                    first,
                    again,
                    again_reference,
                    f"{'positive indices' if kind == POSITIVE_KIND else 'class queries'} of {title}",
                    name,
                )
            )
    return pictures


def pictures_task(impl, divergences, seed, device, time_limit_s, task):
    """:func:`divergence_pictures` as a worker task (module-level, its state as arguments:
    it pickles for any start method)."""
    return divergence_pictures(impl, divergences, seed=seed, device=device, time_limit_s=time_limit_s)


def divergence_pictures(impl, divergences, *, seed=None, device: str = "cpu", time_limit_s=None) -> Pictures:
    """Every divergence's pictures (see :func:`pictures_for`); never raises (but
    KeyboardInterrupt): a picture that cannot be drawn is a note."""
    problem = plot_problem()
    if problem:
        return Pictures({}, f"No pictures: {problem}; the report is text only")
    out = {}
    for divergence in divergences:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[divergence.number] = pictures_for(
                    impl, divergence, seed=seed, device=device, time_limit_s=time_limit_s
                )
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # a picture must never take the report down
            out[divergence.number] = [
                Picture("no picture", note=f"could not be drawn: {type(error).__name__}: {error}")
            ]
    return Pictures(out)
