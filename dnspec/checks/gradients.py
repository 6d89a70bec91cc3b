"""The training loop's view of the builder: gradients into the class embedding, calls
under torch.no_grad and under torch.autocast.

Bugs here leave every forward value exactly right, so only these checks see them: a copy
that detaches the class queries (``class_embed(labels).detach()``) never trains the
denoising label embedding; one that looks them up as ``class_embed.weight[labels]`` (as
ultralytics does with its weight tensor) bypasses ``padding_idx``, so the padding row
receives gradient and drifts, and every padding query changes during training.

Each check takes a :class:`~dnspec.calling.trial.Trial`; the gradient checks share one backward
pass (a call with autograd on, and a small-integer cotangent drawn from the case's seed,
so the expected gradient is an exact scatter-add).
"""

from __future__ import annotations

import torch

from dnspec.calling.trial import CallKey
from dnspec.checks.invariants import outputs_of
from dnspec.checks.violations import fail
from dnspec.contract.decode import recover_labels
from dnspec.contract.tolerances import tolerance_for

GRAD = CallKey(grad=True)


def _backward(trial):
    """(weight.grad, expected gradient in float64, scale per row, case) of one backward
    pass through the class queries, or None when the call returns no class queries.
    Memoized per trial (two properties read it)."""
    if "backward" in trial.memo:
        result = trial.memo["backward"]
        if isinstance(result, BaseException):
            raise result
        return result
    try:
        trial.memo["backward"] = result = _compute_backward(trial)
    except AssertionError as error:
        trial.memo["backward"] = error
        raise
    return result


def _compute_backward(trial):
    case = trial.case_for(GRAD)
    query_class = outputs_of(trial, GRAD)[0]
    if query_class is None:
        return None
    class_embed = trial.args[trial.normal(GRAD)][3]
    weight = class_embed.weight
    if not query_class.requires_grad:
        fail(
            "input_query_class does not require grad although class_embed.weight does: the class queries are "
            "detached from the embedding (a .detach(), or a lookup outside autograd), so the denoising label "
            "embedding never trains",
            "autograd.detached",
            case,
        )
    generator = torch.Generator().manual_seed(case.seed)
    cotangent = (
        torch.randint(-2, 3, tuple(query_class.shape), generator=generator).to(query_class.dtype).to(query_class.device)
    )
    weight.grad = None
    torch.autograd.backward(query_class, cotangent)
    if weight.grad is None:
        fail(
            "backpropagating into input_query_class puts no gradient on class_embed.weight",
            "autograd.no_gradient",
            case,
        )
    labels, _ = recover_labels(query_class.detach(), trial.weight)
    dim = query_class.shape[-1]
    flat = cotangent.detach().to(torch.float64).cpu().reshape(-1, dim)
    index = labels.cpu().reshape(-1)
    expected = torch.zeros(tuple(weight.shape), dtype=torch.float64).index_add_(0, index, flat)
    scale = torch.zeros(weight.shape[0], dtype=torch.float64).index_add_(0, index, flat.abs().sum(-1))
    return weight.grad.detach().to(torch.float64).cpu(), expected, scale, case


def check_class_embed_gradient(trial):
    """With class_embed.weight requiring grad, the class queries require grad, and
    backpropagating a cotangent puts on every non-padding row of the weight the sum of
    the cotangent rows of the queries that carry that class (the exact gradient of a
    lookup), within the dtype's tolerance."""
    result = _backward(trial)
    if result is None:
        return
    grad, expected, scale, case = result
    rows = torch.arange(grad.shape[0]) != case.num_classes
    tol = tolerance_for(case.dtype).grad * scale[:, None]
    wrong = rows[:, None] & ((grad - expected).abs() > tol)
    if bool(wrong.any()):
        c, j = (int(v) for v in wrong.nonzero()[0])
        fail(
            f"class_embed.weight.grad[{c}, {j}] is {float(grad[c, j])}, but the queries carrying class {c} received "
            f"cotangents summing to {float(expected[c, j])} (the gradient of a lookup is their scatter-add)",
            "autograd.gradient",
            case,
        )


def check_padding_row_gradient(trial):
    """The padding row of class_embed.weight (index num_classes, the embedding's
    padding_idx) receives zero gradient: padding queries are never trained."""
    result = _backward(trial)
    if result is None:
        return
    grad, _, _, case = result
    row = grad[case.num_classes]
    if bool((row != 0).any()):
        fail(
            f"the padding row class_embed.weight.grad[{case.num_classes}] is nonzero (max |g| {float(row.abs().max())}): "
            "the lookup bypasses padding_idx (class_embed.weight[labels] instead of class_embed(labels)), so the "
            "padding embedding drifts during training",
            "autograd.padding_row",
            case,
        )


def check_no_grad_outputs(trial):
    """A call under torch.no_grad (every call of the suite but the autograd ones) returns
    outputs that do not require grad."""
    outputs = outputs_of(trial)
    for name, value in zip(("input_query_class", "input_query_bbox", "attn_mask"), outputs[:3], strict=False):
        if isinstance(value, torch.Tensor) and value.requires_grad:
            fail(
                f"{name} requires grad although the call ran under torch.no_grad: something re-enables autograd "
                "inside the builder (an inference call then builds a graph and keeps the embedding alive)",
                "autograd.grad_under_no_grad",
            )


def check_autocast_outputs(trial):
    """A call under torch.autocast (bfloat16 on the CPU, float16 on CUDA), as mixed-
    precision training makes it, works and returns finite class queries and boxes."""
    key = CallKey(autocast=True)
    outputs = outputs_of(trial, key)
    case = trial.case_for(key)
    for name, value in zip(("input_query_class", "input_query_bbox"), outputs[:2], strict=False):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            fail(f"under torch.autocast, {name} holds {bad} non-finite values", "autograd.autocast_nonfinite", case)
