"""lightly-train's CDN builder (its LT-DETR) as the built-in SPEC name ``lightly-train-ltdetr``.

Every module of the installed lightly_train that defines
``get_contrastive_denoising_training_group`` at top level becomes one name; in 0.18.0
there is one, ``lightly_train._task_models.object_detection_components.denoising``
(LT-DETR's RT-DETRv2 and D-FINE decoders and the instance-segmentation decoder all import
it), named ``lightly-train-ltdetr``. Another module would be named
``lightly-train-<its folder without '_components'>``. They are found by reading the
package's files (:mod:`dnspec.implementations.adapters.discovery`), without importing lightly_train
(whose import takes about 6 s: it pulls in pytorch_lightning, torchvision and
transformers); a module is imported only when its name is loaded.

The mapping (conventions only): none is needed. lightly-train keeps RT-DETR's signature
(``targets`` with 'labels' and 'boxes', ``class_embed`` an nn.Embedding,
``num_denoising``, ``label_noise_ratio``, ``box_noise_scale``), its bool mask (True = may
not attend) and its dn_meta keys; the adapter calls it with those names and passes every
output as it is.

What differs from RT-DETR (lightly-train 0.18.0,
lightly_train/_task_models/object_detection_components/denoising.py; its code is
RT-DETRv2's ``cnd`` builder):

1. box_noise_scale 0 raises UnboundLocalError: the returned ``input_query_bbox_unact``
   (line 139) is assigned only under ``if box_noise_scale > 0`` (lines 89-100).
2. An all-empty batch (every image without boxes) does not return four Nones: since its
   PR #446 (so that every DDP rank runs the denoising branch and all-reduces the same
   gradients) ``num_group`` is 0 (lines 41-45) and the function runs on: with
   box_noise_scale > 0 it returns zero-width tensors [bs, 0, D] and [bs, 0, 4], an
   all-False [Q, Q] mask and {'dn_positive_idx': bs empty int64 tensors,
   'dn_num_group': 0, 'dn_num_split': [0, Q]}; with box_noise_scale 0 it raises
   UnboundLocalError (1.). num_denoising <= 0 still returns four Nones (line 35).
3. The box buffer is ``torch.zeros([bs, max_gt_num, 4], device=device)`` (line 52), the
   default dtype (float32) whatever the boxes' dtype, as RT-DETR upstream and
   transformers (dnspec's reference keeps the input dtype).
4. An empty targets list raises IndexError at ``targets[0]`` (line 38).

Otherwise it is RT-DETR's: the same draws in the same order and shapes from torch's
global RNG (so a float32 call is bit-identical to the reference under one
``torch.manual_seed``), ``known_bbox += rand_sign * rand_part * diff`` (the same numbers
as RT-DETR's ``rand_part *= rand_sign``), crossed corners collapsing to a side of 1e-5
(no |w| flip; box_ops.py's conversions do not clamp), the same mask (upstream's loop form,
lines 110-127). ``accepts_noise`` is False.
"""

from __future__ import annotations

from collections.abc import Callable

from dnspec.implementations.adapters.discovery import (
    distribution_version,
    find_definitions,
    import_builder,
    missing_loader,
    package_root,
)
from dnspec.implementations.specs import Implementation, SpecError

PACKAGE = "lightly_train"  # the importable package (dnspec.implementations.adapters.installed reads this)
DISTRIBUTION = "lightly-train"
FUNCTION_NAME = "get_contrastive_denoising_training_group"
INSTALL_HINT = (
    "install lightly-train (pip install lightly-train==0.18.0 beside torchvision; bash ci/peers.sh builds that venv)"
)
# lightly-train's model for a folder, where it has a name of its own
ALIASES = {"object_detection": "ltdetr"}
_NAMES_WHEN_ABSENT = ("ltdetr",)


def lightly_train_root():
    """The folder of the installed lightly_train package, found without importing it."""
    return package_root(PACKAGE)


def builder_name(parts: tuple[str, ...]) -> str:
    """The SPEC suffix of the module at ``parts`` (path below lightly_train, no .py):
    its folder, without a leading '_' and a trailing '_components', through ALIASES;
    the file name joins it unless it is ``denoising``."""
    folder = parts[-2] if len(parts) >= 2 else ""
    folder = folder.lstrip("_")
    if folder.endswith("_components"):
        folder = folder[: -len("_components")]
    name = ALIASES.get(folder, folder) or parts[-1]
    if parts[-1] != "denoising" and name != parts[-1]:
        name = f"{name}.{parts[-1]}"
    return name


def discover_builders(root=None, package: str = PACKAGE) -> dict[str, str]:
    """``{name: module name}`` for every module under ``root`` (default: the installed
    lightly_train) defining ``get_contrastive_denoising_training_group`` at top level.
    Reads files only; empty when lightly-train is absent."""
    if root is None:
        root = lightly_train_root()
        if root is None:
            return {}
    found: dict[str, str] = {}
    for parts, module_name in find_definitions(root, package, FUNCTION_NAME):
        name = builder_name(parts)
        if name in found:  # two modules of one name in different folders
            name = ".".join(parts)
        found[name] = module_name
    return dict(sorted(found.items()))


def adapt(builder: Callable) -> Callable:
    """Call a lightly-train builder with dnspec's arguments (the same names) and pass its
    outputs on as they are."""

    def call(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
    ):
        return builder(
            targets,
            num_classes,
            num_queries,
            class_embed,
            num_denoising=num_denoising,
            label_noise_ratio=label_noise_ratio,
            box_noise_scale=box_noise_scale,
        )

    call.__name__ = getattr(builder, "__name__", "builder")
    call.__qualname__ = f"lightly_train_adapter({getattr(builder, '__module__', '?')}.{call.__name__})"
    call.__wrapped_port__ = builder
    return call


def _loader(name: str, module_name: str) -> Callable[[], Implementation]:
    def load() -> Implementation:
        spec = f"lightly-train-{name}"
        builder = import_builder(spec, module_name, FUNCTION_NAME, INSTALL_HINT)
        return Implementation(
            name=spec,
            fn=adapt(builder),
            accepts_noise=False,
            version=f"lightly-train {distribution_version(DISTRIBUTION)}",
            description=(
                f"{module_name}.{FUNCTION_NAME} (RT-DETR's conventions, nothing renamed); box buffer in the default "
                "dtype (float32) whatever the input dtype"
            ),
            extra={"module": module_name, "port": builder, "claims_rtdetr_semantics": True},
        )

    return load


def builtin_implementations() -> dict[str, Callable[[], Implementation]]:
    """``{'lightly-train-<name>': loader}`` for every discovered builder; when
    lightly-train is not installed, ``lightly-train-ltdetr`` with a loader that raises
    SpecError saying what to install."""
    root = lightly_train_root()
    if root is None:
        return {
            f"lightly-train-{name}": missing_loader(f"lightly-train-{name}", "lightly-train", INSTALL_HINT)
            for name in _NAMES_WHEN_ABSENT
        }
    builders = discover_builders(root, PACKAGE)
    if not builders:
        return {"lightly-train-ltdetr": _none_in_this_version()}
    return {f"lightly-train-{name}": _loader(name, module_name) for name, module_name in builders.items()}


def _none_in_this_version() -> Callable[[], Implementation]:
    def load() -> Implementation:
        raise SpecError(
            f"cannot load SPEC 'lightly-train-ltdetr': the installed lightly-train {distribution_version(DISTRIBUTION)} "
            f"has no module defining {FUNCTION_NAME}; {INSTALL_HINT}"
        )

    return load
