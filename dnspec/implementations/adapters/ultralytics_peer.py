"""ultralytics' CDN builder ``ultralytics.models.utils.ops.get_cdn_group`` as the built-in
SPEC name ``ultralytics``.

The adapter maps conventions and nothing else:

  ours                              ultralytics
  targets (one dict per image)  ->  batch = {'gt_groups': [n_0, n_1, ...] (boxes per image),
                                             'cls': labels of all images concatenated,
                                             'bboxes': boxes of all images concatenated,
                                             'batch_idx': int64 image index of each box}
                                    (as ultralytics' RTDETRDetectionModel.loss builds it)
  class_embed (nn.Embedding)    ->  class_embed.weight (ultralytics indexes a weight tensor)
  num_denoising                 ->  num_dn
  label_noise_ratio             ->  cls_noise_ratio
  (a training-time call)        ->  training=True (with the default False it returns
                                    (None, None, None, None) for every input)
  dn_meta['dn_positive_idx']    <-  dn_meta['dn_pos_idx'] (a list, returned as a tuple);
                                    every other key as it is, its extra 'dn_gt_idx' included
  attn_mask                     <-  as it is (already bool, True = may not attend)

Semantics are ultralytics' own and differ from RT-DETR's in places (an image with more
than ``num_denoising`` boxes is randomly subsampled; padding rows are zeros in logit
space; ``torch.logit(eps=1e-6)``; float32 outputs whatever the input dtypes; its own RNG
draw shapes): see the README's peers section. The adapter hides none of them.
``accepts_noise`` is False: ultralytics draws from torch's global RNG.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import torch

from dnspec.implementations.specs import Implementation, SpecError

MODULE_NAME = "ultralytics.models.utils.ops"
FUNCTION_NAME = "get_cdn_group"
INSTALL_HINT = (
    "install ultralytics (pip install ultralytics; it needs torchvision: bash ci/peers.sh builds a venv with every "
    "peer, on torch 2.14.1 + torchvision 0.29.1)"
)


def to_ultralytics_batch(targets) -> dict:
    """dnspec's per-image targets as ultralytics' flat batch dict (see the module docstring)."""
    if not isinstance(targets, (list, tuple)) or not all(
        isinstance(t, Mapping) and "labels" in t and "boxes" in t for t in targets
    ):
        raise TypeError(
            "ultralytics adapter: targets must be a list of dicts with 'labels' and 'boxes' to be flattened "
            "into ultralytics' batch dict (this error is the adapter's, not ultralytics')"
        )
    gt_groups = [len(t["labels"]) for t in targets]
    if not targets:
        return {
            "gt_groups": gt_groups,
            "cls": torch.zeros(0, dtype=torch.int64),
            "bboxes": torch.zeros(0, 4),
            "batch_idx": torch.zeros(0, dtype=torch.int64),
        }
    device = targets[0]["labels"].device
    return {
        "gt_groups": gt_groups,
        "cls": torch.cat([t["labels"] for t in targets]),
        "bboxes": torch.cat([t["boxes"] for t in targets]),
        "batch_idx": torch.repeat_interleave(
            torch.arange(len(targets), device=device), torch.tensor(gt_groups, dtype=torch.int64, device=device)
        ),
    }


def adapt(get_cdn_group: Callable) -> Callable:
    """Wrap ``get_cdn_group`` so that it takes and returns dnspec's conventions."""

    def call(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
    ):
        outputs = get_cdn_group(
            to_ultralytics_batch(targets),
            num_classes,
            num_queries,
            getattr(class_embed, "weight", class_embed),
            num_dn=num_denoising,
            cls_noise_ratio=label_noise_ratio,
            box_noise_scale=box_noise_scale,
            training=True,
        )
        if not isinstance(outputs, tuple) or len(outputs) != 4:
            return outputs  # not its usual shape: passed on for the checks to report
        query_class, query_bbox, attn_mask, dn_meta = outputs
        return query_class, query_bbox, attn_mask, rename_meta(dn_meta)

    call.__name__ = "get_cdn_group"
    call.__qualname__ = f"ultralytics_adapter({MODULE_NAME}.{FUNCTION_NAME})"
    call.__wrapped_port__ = get_cdn_group
    return call


def rename_meta(dn_meta):
    """``dn_pos_idx`` (a list) -> ``dn_positive_idx`` (a tuple); other keys unchanged."""
    if not isinstance(dn_meta, Mapping) or "dn_pos_idx" not in dn_meta:
        return dn_meta
    renamed = {}
    for key, value in dn_meta.items():
        if key == "dn_pos_idx":
            renamed["dn_positive_idx"] = tuple(value) if isinstance(value, list) else value
        else:
            renamed[key] = value
    return renamed


def _load() -> Implementation:
    try:
        module = importlib.import_module(MODULE_NAME)
    except ModuleNotFoundError as exc:
        if exc.name == "ultralytics" or (exc.name or "").startswith("ultralytics."):
            raise SpecError(f"cannot load SPEC 'ultralytics': ultralytics is not installed; {INSTALL_HINT}") from exc
        raise SpecError(
            f"cannot load SPEC 'ultralytics': importing {MODULE_NAME!r} needs {exc.name!r}, which is not installed; "
            f"{INSTALL_HINT}"
        ) from exc
    except Exception as exc:  # e.g. PackageNotFoundError: ultralytics reads torchvision's version at import
        raise SpecError(
            f"cannot load SPEC 'ultralytics': importing {MODULE_NAME!r} raised {type(exc).__name__}: {exc}; {INSTALL_HINT}"
        ) from exc
    fn = getattr(module, FUNCTION_NAME, None)
    if not callable(fn):
        raise SpecError(f"cannot load SPEC 'ultralytics': {MODULE_NAME!r} has no callable {FUNCTION_NAME!r}")
    import ultralytics

    return Implementation(
        name="ultralytics",
        fn=adapt(fn),
        accepts_noise=False,
        version=f"ultralytics {ultralytics.__version__}",
        description=(
            f"{MODULE_NAME}.{FUNCTION_NAME}(training=True) through dnspec's adapter (flat batch dict, "
            "class_embed.weight, dn_pos_idx -> dn_positive_idx)"
        ),
        extra={"module": MODULE_NAME, "port": fn},
    )


def builtin_implementations() -> dict[str, Callable[[], Implementation]]:
    """``{'ultralytics': loader}``; the loader raises SpecError naming the package to
    install when ultralytics (or what its import needs) is absent."""
    return {"ultralytics": _load}
