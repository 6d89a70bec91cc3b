"""libreyolo's CDN builders, as built-in SPEC names ``libreyolo-<model>``.

Every ``libreyolo/models/<model>/denoising.py`` of the installed libreyolo that defines
``get_contrastive_denoising_training_group`` at top level becomes one name (in libreyolo
1.6.0: ``libreyolo-rtdetr``, ``-dfine``, ``-deim``, ``-domedetr``, ``-gtr``; the other
models that use CDN import one of these, and ``gtr/obb_denoising.py`` builds rotated
boxes under another name). They are found by reading the package's files
(:mod:`dnspec.implementations.adapters.discovery`), without importing libreyolo; a module is imported
(about 3 s: libreyolo's ``__init__`` imports its whole model zoo) only when its name is
loaded.

The mapping (conventions only)
------------------------------
libreyolo keeps RT-DETR's signature and conventions, so most of the adapter is the
identity:

  ours                              libreyolo
  targets[i]['labels'/'boxes']  ->  the same keys, passed as they are
  class_embed (nn.Embedding)    ->  the same module
  num_denoising, label_noise_ratio, box_noise_scale  ->  the same names
  attn_mask bool [N+Q, N+Q]     <-  bool, True = may not attend (the same), except
                                    Dome-DETR's [bs*num_heads, N+Q, N+Q] (below)
  dn_meta                       <-  unchanged (GTR's extra 'dn_group_detr' included)

Extra parameters are set by name, from the builder's signature, to the value that
reproduces RT-DETR's semantics:

  group_detr=1                  (gtr) one Group-DETR group: the CDN block once, Q object
                                queries. With group_detr=k GTR tiles the whole block k
                                times (N = 2*m*G*k rows, dn_num_split [N, Q*k], k*G
                                isolated 2m-blocks, 'dn_group_detr': k) and dn_num_group
                                stays G. GTR trains with k = 3 (models/gtr/nn.py:55 builds
                                its decoder with group_detr=3, which decoder.py:1438
                                passes in training), so a second SPEC,
                                ``libreyolo-gtr-group_detr3``, runs that recipe with every
                                layout-dependent property ``not_comparable`` (only
                                inputs untouched, determinism and bad input are compared)
  batch_queries_num=[num_queries] * len(targets), num_heads=1
                                (domedetr) every image has all num_queries object queries:
                                RT-DETR's fixed query count, no PAQI padding. Dome-DETR
                                then returns D-FINE's mask repeated once per image and
                                head, [bs*num_heads, T, T]; the adapter returns the one
                                [T, T] mask when all copies are equal and raises when
                                they are not (no shared 2D equivalent). Its decoder always
                                passes batch_queries_num, so this is the code path that
                                trains; batch_queries_num=None would return D-FINE's
                                output untouched.

A parameter the adapter does not know is left at its default when it has one (named in
the Implementation's description); a builder with an unknown parameter without a
default cannot be loaded (SpecError). With these values every property compares with
RT-DETR; only the group_detr=3 variant has ``not_comparable`` entries (RECIPE_VARIANTS).

What differs from RT-DETR (libreyolo 1.6.0; the adapter hides none of it)
-------------------------------------------------------------------------
All five: the box buffer is ``torch.zeros([bs, max_gt_num, 4], device=device)``, the
default dtype (float32) whatever the boxes' dtype (rtdetr/denoising.py:64,
dfine/denoising.py:49, deim/denoising.py:48, gtr/denoising.py:58; domedetr reuses
dfine's), as RT-DETR upstream and transformers do (dnspec's reference keeps the input
dtype): float64 boxes come back float32 and half boxes are noised in float32. The noise
is drawn from torch's global RNG in upstream's order and shapes, so under one
``torch.manual_seed`` a float32 call is bit-identical to the reference where the code
agrees. An empty targets list raises IndexError at ``targets[0]``.

- **rtdetr** (models/rtdetr/denoising.py): RT-DETR's function, upstream's loop form of
  the group mask (lines 130-147, the same mask). No semantic difference found: all-empty
  batch -> (None, None, None, None) (line 54); box_noise_scale 0 -> boxes in box space
  (line 106's ``if`` reassigns input_query_bbox, as RT-DETR); crossed corners collapse to
  a side of 1e-5 (inverse_sigmoid eps 1e-5, rtdetr/utils.py:28).
- **dfine**, **deim** (models/{dfine,deim}/denoising.py, the same code):
  1. box_noise_scale 0 raises UnboundLocalError: the returned ``input_query_bbox_unact``
     is assigned only under ``if box_noise_scale > 0`` (dfine 96-108 and 141, deim
     95-107 and 140); libreyolo's decoders never pass 0.
  2. after the noise, negative sides are flipped: ``input_query_bbox[input_query_bbox
     < 0] *= -1`` (dfine:107, deim:106): a negative whose corners cross gets side
     |x1 - x0| instead of collapsing to 1e-5 (only w and h can be negative: the corners
     are clipped to [0, 1] first). So the ``no_collapsed_boxes`` advisory holds for them,
     and their crossed negatives differ from RT-DETR's.
  3. all-empty batch -> (None, None, None, {'dn_positive_idx': None, 'dn_num_group': 0,
     'dn_num_split': [0, num_queries]}) (dfine 34-40, deim 33-39), not four Nones.
  4. dn_positive_idx built with arange instead of nonzero (dfine 73-82): the same
     values, int64, ascending (no host sync).
  5. box_cxcywh_to_xyxy clamps w and h at 0 (dfine/box_ops.py:14): the same on valid
     boxes; a negative side is read as 0.
- **domedetr** (models/domedetr/denoising.py): D-FINE's builder (imported from
  dfine/denoising.py, line 32), so D-FINE's differences 1-5, then the per-image mask
  (lines 63-89). Also: with num_denoising <= 0 D-FINE returns dn_meta None and line 67
  (``dn_meta["dn_num_split"]``) raises TypeError (its decoder never calls it so); an
  all-empty batch returns (None, None, mask, dn_meta) with an all-False [T, T] mask
  (line 74), T = num_queries.
- **gtr** (models/gtr/denoising.py): D-FINE's differences 1 (lines 98-110, 156), 2
  (line 109) and 5 (gtr/box_ops.py:21); then:
  3'. all-empty batch does not return early (lines 42-46: num_group = 0): with
      box_noise_scale > 0 it returns zero-width tensors [bs, 0, D], [bs, 0, 4], an
      all-False [Q, Q] mask and {'dn_positive_idx': bs empty tensors, 'dn_num_group': 0,
      'dn_group_detr': 1, 'dn_num_split': [0, Q]}; with box_noise_scale 0 it raises
      UnboundLocalError like the rest.
  The DINO mask inside each Group-DETR block (lines 120-145) is RT-DETR's for
  group_detr=1; for group_detr=3 the mask and dn_positive_idx are RT-DETR's for 3G
  groups and 3Q object queries, with dn_num_group G (not 3G). Its decoder always passes
  box_noise_scale=1.0 (decoder.py:1437), whatever the configured scale.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import torch

from dnspec.implementations.adapters.discovery import (
    distribution_version,
    find_definitions,
    import_builder,
    missing_loader,
    package_root,
)
from dnspec.implementations.specs import Implementation, SpecError

PACKAGE = "libreyolo"  # the importable package (dnspec.implementations.adapters.installed reads this)
DISTRIBUTION = "libreyolo"
FUNCTION_NAME = "get_contrastive_denoising_training_group"
INSTALL_HINT = "install libreyolo (pip install libreyolo==1.6.0 beside torchvision; bash ci/peers.sh builds that venv)"
# names offered (with an install hint) when libreyolo is absent: libreyolo 1.6.0's
# builders; when it is installed, the list is discovered instead
_NAMES_WHEN_ABSENT = ("rtdetr", "dfine", "deim", "domedetr", "gtr")

# the upstream parameters, passed under the same names
UPSTREAM_PARAMETERS = (
    "targets",
    "num_classes",
    "num_queries",
    "class_embed",
    "num_denoising",
    "label_noise_ratio",
    "box_noise_scale",
)


def _one_group(targets, num_queries):
    return 1


def _all_queries_real(targets, num_queries):
    try:
        return [num_queries] * len(targets)
    except TypeError:
        raise TypeError(
            f"libreyolo adapter: targets of type {type(targets).__name__} has no length, so batch_queries_num "
            "cannot be built (this error is the adapter's, not libreyolo's)"
        ) from None


def _one_head(targets, num_queries):
    return 1


# extra parameter -> (value from (targets, num_queries), why that value is RT-DETR's semantics)
EXTRA_ARGUMENTS: dict[str, tuple[Callable, str]] = {
    "group_detr": (_one_group, "group_detr=1: one Group-DETR group, the CDN block once (RT-DETR's layout)"),
    "batch_queries_num": (
        _all_queries_real,
        "batch_queries_num=[num_queries]*bs: every image has all num_queries object queries (RT-DETR's fixed count)",
    ),
    "num_heads": (_one_head, "num_heads=1: the per-head copies of the mask are identical; one is enough"),
}


# a second SPEC per builder for an extra parameter whose training-recipe value has no
# RT-DETR equivalent: parameter -> (value, how the description says it, not_comparable)
_GROUP_DETR_WHY = (
    "group_detr=3 (GTR's training recipe) tiles the CDN block once per Group-DETR group: N = 2*m*G*3 dn rows, "
    "3*Q object queries, dn_num_group G; no RT-DETR equivalent"
)
RECIPE_VARIANTS: dict[str, tuple[object, str, dict[str, str]]] = {
    "group_detr": (
        3,
        "group_detr=3: GTR's training recipe, the CDN block tiled per Group-DETR group (not RT-DETR's layout)",
        {
            name: _GROUP_DETR_WHY
            for name in (
                "structure",
                "attention_mask",
                "positive_indices",
                "class_queries",
                "boxes",
                "noiseless_matches_reference",
                "injected_noise_matches_reference",
                "device_agreement",
                "dtype_agreement",
                "label_flip_rate",
                "replacement_uniform",
                "label_noise_independence",
                "box_magnitudes",
                "noise_independence",
                "box_output_space",
                "no_collapsed_boxes",
                "label_flip_rate_is_ratio",
            )
        },
    ),
}


def libreyolo_root():
    """The folder of the installed libreyolo package, found without importing it."""
    return package_root(PACKAGE)


def discover_builders(root=None, package: str = PACKAGE) -> dict[str, str]:
    """``{model: module name}`` for every ``<package>/models/**.py`` under ``root``
    (default: the installed libreyolo) that defines ``get_contrastive_denoising_training_group``
    at top level; ``models/<model>/denoising.py`` is named ``<model>``, any other file by
    its dotted path below ``models``. Reads files only; empty when libreyolo is absent."""
    if root is None:
        root = libreyolo_root()
        if root is None:
            return {}
    found: dict[str, str] = {}
    for parts, module_name in find_definitions(root, package, FUNCTION_NAME, under="models"):
        inner = parts[1:]  # below models/
        model = inner[0] if len(inner) == 2 and inner[1] == "denoising" else ".".join(inner)
        found[model] = module_name
    return dict(sorted(found.items()))


def extra_parameters(builder: Callable) -> tuple[dict[str, Callable], dict[str, object], list[str]]:
    """How the adapter fills the builder's parameters: ``(set, left, problems)``: the
    known extras it sets (name -> value function), the unknown ones with a default that
    it leaves as they are (name -> default), and what makes the builder uncallable with
    dnspec's arguments (an upstream parameter it lacks, an unknown one without a default)."""
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return {}, {}, []
    problems = [f"no parameter {name!r}" for name in UPSTREAM_PARAMETERS if name not in parameters]
    set_by_adapter, left = {}, {}
    for name, parameter in parameters.items():
        if name in UPSTREAM_PARAMETERS or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in EXTRA_ARGUMENTS:
            set_by_adapter[name] = EXTRA_ARGUMENTS[name][0]
        elif parameter.default is not parameter.empty:
            left[name] = parameter.default
        else:
            problems.append(f"a parameter {name!r} without a default, which the adapter does not know how to set")
    return set_by_adapter, left, problems


def collapse_repeated_mask(attn_mask):
    """A mask repeated per image and head, ``[bs*num_heads, T, T]``, as dnspec's one
    ``[T, T]`` mask when every copy is equal; a 2D mask (or anything else) passes as it
    is; copies that differ raise (they have no shared 2D equivalent)."""
    if not isinstance(attn_mask, torch.Tensor) or attn_mask.dim() != 3:
        return attn_mask
    if attn_mask.shape[0] == 0:
        raise ValueError("libreyolo adapter: the per-image attention mask has no copies to read a shared mask from")
    first = attn_mask[0]
    if not bool((attn_mask == first).all()):
        differ = [i for i in range(attn_mask.shape[0]) if not torch.equal(attn_mask[i], first)]
        raise ValueError(
            f"libreyolo adapter: the per-image attention masks differ (copies {differ[:5]} differ from copy 0); "
            "they have no shared [T, T] equivalent"
        )
    return first


def adapt(builder: Callable, set_by_adapter: Mapping[str, Callable] | None = None) -> Callable:
    """Wrap a libreyolo builder so that it takes and returns dnspec's conventions.
    ``set_by_adapter`` (default: read from its signature) gives its extra arguments."""
    if set_by_adapter is None:
        set_by_adapter = extra_parameters(builder)[0]
    set_by_adapter = dict(set_by_adapter)

    def call(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
    ):
        extras = {name: value(targets, num_queries) for name, value in set_by_adapter.items()}
        outputs = builder(
            targets,
            num_classes,
            num_queries,
            class_embed,
            num_denoising=num_denoising,
            label_noise_ratio=label_noise_ratio,
            box_noise_scale=box_noise_scale,
            **extras,
        )
        if not isinstance(outputs, tuple) or len(outputs) != 4:
            return outputs  # not the builder's usual shape: passed on for the checks to report
        query_class, query_bbox, attn_mask, dn_meta = outputs
        return query_class, query_bbox, collapse_repeated_mask(attn_mask), dn_meta

    call.__name__ = getattr(builder, "__name__", "builder")
    call.__qualname__ = f"libreyolo_adapter({getattr(builder, '__module__', '?')}.{call.__name__})"
    call.__wrapped_port__ = builder
    return call


def _loader(model: str, module_name: str, variant: tuple[str, object] | None = None) -> Callable[[], Implementation]:
    """The loader of ``libreyolo-<model>`` (extras at RT-DETR's values) or, with
    ``variant=(parameter, value)``, of ``libreyolo-<model>-<parameter><value>``."""
    spec = f"libreyolo-{model}" if variant is None else f"libreyolo-{model}-{variant[0]}{variant[1]}"

    def load() -> Implementation:
        builder = import_builder(spec, module_name, FUNCTION_NAME, INSTALL_HINT)
        set_by_adapter, left, problems = extra_parameters(builder)
        if problems:
            raise SpecError(
                f"cannot load SPEC {spec!r}: {module_name}.{FUNCTION_NAME} has {'; '.join(problems)} "
                "(dnspec.implementations.adapters.libreyolo_peers.EXTRA_ARGUMENTS)"
            )
        arguments = {name: EXTRA_ARGUMENTS[name][1] for name in set_by_adapter}
        not_comparable: dict[str, str] = {}
        if variant is not None:
            parameter, value = variant
            if parameter not in set_by_adapter:
                raise SpecError(
                    f"cannot load SPEC {spec!r}: {module_name}.{FUNCTION_NAME} has no parameter {parameter!r}"
                )
            set_by_adapter[parameter] = lambda targets, num_queries, value=value: value
            arguments[parameter] = RECIPE_VARIANTS[parameter][1]
            not_comparable = dict(RECIPE_VARIANTS[parameter][2])
        described = list(arguments.values()) + [
            f"{name} left at its default {default!r}" for name, default in left.items()
        ]
        return Implementation(
            name=spec,
            fn=adapt(builder, set_by_adapter),
            accepts_noise=False,
            version=f"libreyolo {distribution_version(DISTRIBUTION)}",
            description=(
                f"{module_name}.{FUNCTION_NAME} through dnspec's adapter (RT-DETR's argument names"
                + ("; " + "; ".join(described) if described else "")
                + "); box buffer in the default dtype (float32) whatever the input dtype"
            ),
            extra={
                "module": module_name,
                "port": builder,
                "arguments": arguments,
                "left_at_default": dict(left),
                "claims_rtdetr_semantics": variant is None,
            },
            not_comparable=not_comparable,
        )

    return load


def builtin_implementations() -> dict[str, Callable[[], Implementation]]:
    """``{'libreyolo-<model>': loader}`` for every discovered builder, plus
    ``libreyolo-<model>-<parameter><value>`` for each RECIPE_VARIANTS parameter the
    builder's file defines; when libreyolo is not installed, loaders for libreyolo
    1.6.0's names that raise SpecError saying what to install."""
    root = libreyolo_root()
    if root is None:
        return {
            f"libreyolo-{model}": missing_loader(f"libreyolo-{model}", "libreyolo", INSTALL_HINT)
            for model in _NAMES_WHEN_ABSENT
        }
    builders = discover_builders(root, PACKAGE)
    if not builders:
        return {"libreyolo-rtdetr": _none_in_this_version()}
    loaders: dict[str, Callable[[], Implementation]] = {}
    for model, module_name in builders.items():
        loaders[f"libreyolo-{model}"] = _loader(model, module_name)
        parameters = _parameters_in_source(root, module_name)
        for parameter, (value, _, _) in RECIPE_VARIANTS.items():
            if parameter in parameters:
                loaders[f"libreyolo-{model}-{parameter}{value}"] = _loader(model, module_name, (parameter, value))
    return loaders


def _parameters_in_source(root, module_name: str) -> set[str]:
    """The parameter names of the builder's ``def``, read from its file (no import)."""
    import ast
    from pathlib import Path

    path = Path(root).joinpath(*module_name.split(".")[1:]).with_suffix(".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == FUNCTION_NAME:
            args = node.args
            return {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    return set()


def _none_in_this_version() -> Callable[[], Implementation]:
    def load() -> Implementation:
        raise SpecError(
            f"cannot load SPEC 'libreyolo-rtdetr': the installed libreyolo {distribution_version(DISTRIBUTION)} has no "
            f"models/**.py defining {FUNCTION_NAME}; {INSTALL_HINT}"
        )

    return load
