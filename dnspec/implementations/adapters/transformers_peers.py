"""transformers' ports of RT-DETR's CDN builder, as built-in SPEC names ``transformers-<model>``.

Every ``transformers.models.*.modeling_*`` module of the installed transformers that
defines ``get_contrastive_denoising_training_group`` becomes one name (in transformers
5.23: rt_detr, rt_detr_v2, d_fine, deimv2, pp_doclayout_v2, pp_doclayout_v3). They are
found by reading the package's files for ``def get_contrastive_denoising_training_group``,
without importing transformers or any model; a module is imported only when its name is
loaded.

The adapter maps conventions and nothing else:

  ours                         transformers
  targets[i]['labels']    ->   targets[i]['class_labels']   (other keys passed as they are)
  num_denoising           ->   num_denoising_queries
  attn_mask bool          <-   float additive mask: True exactly where it is -inf
                               (any value other than 0 and -inf is an error, not mapped)
  dn_meta                 <-   unchanged (same keys)

Semantics are the port's own. In particular its box buffer is created with the default
dtype (float32) whatever the dtype of the input boxes, so float64 boxes come back as
float32 and half boxes are computed in float32; the adapter passes that through. The ports
draw from torch's global RNG, so ``accepts_noise`` is False: they are compared with the
reference under the same ``torch.manual_seed``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from dnspec.implementations.adapters.discovery import import_builder, missing_loader
from dnspec.implementations.specs import Implementation, SpecError

FUNCTION_NAME = "get_contrastive_denoising_training_group"
INSTALL_HINT = "install transformers (pip install 'dnspec[peers]')"
_DEFINES = re.compile(rf"^def {FUNCTION_NAME}\(", re.MULTILINE)
# names offered (with an install hint) when transformers is absent: the ports the
# dnspec issue tracker names; when it is installed, the list is discovered instead
_NAMES_WHEN_ABSENT = ("rt_detr", "rt_detr_v2", "d_fine", "deimv2")


def transformers_root() -> Path | None:
    """The folder of the installed transformers package, found without importing it."""
    try:
        spec = importlib.util.find_spec("transformers")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def discover_ports(root: Path | str | None = None, package: str = "transformers") -> dict[str, str]:
    """``{model: module name}`` for every ``<package>.models.**.modeling_<model>`` module
    under ``root`` (default: the installed transformers) whose source defines
    ``get_contrastive_denoising_training_group`` at top level. Reads files only (about
    530 in transformers 5.23, once per process); imports nothing. Sorted by model name;
    empty when transformers is not installed."""
    if root is None:
        root = transformers_root()
        if root is None:
            return {}
    return dict(_scan(Path(root).resolve(), package))


@functools.cache
def _scan(root: Path, package: str) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for path in sorted((root / "models").rglob("modeling_*.py")):
        try:
            source = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if FUNCTION_NAME not in source or not _DEFINES.search(source):
            continue
        relative = path.relative_to(root).with_suffix("")
        module_name = ".".join((package, *relative.parts))
        model = path.stem[len("modeling_") :]
        if model in found:  # two files of one model name in different folders
            model = ".".join(relative.parts[1:-1] + (model,))
        found[model] = module_name
    return tuple(sorted(found.items()))


def adapt(port: Callable) -> Callable:
    """Wrap a transformers port so that it takes and returns dnspec's conventions."""

    def call(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
    ):
        outputs = port(
            _to_transformers_targets(targets),
            num_classes,
            num_queries,
            class_embed,
            num_denoising_queries=num_denoising,
            label_noise_ratio=label_noise_ratio,
            box_noise_scale=box_noise_scale,
        )
        if not isinstance(outputs, tuple) or len(outputs) != 4:
            return outputs  # not the port's usual shape: passed on for the checks to report
        query_class, query_bbox, attn_mask, dn_meta = outputs
        return query_class, query_bbox, additive_mask_to_bool(attn_mask), dn_meta

    call.__name__ = getattr(port, "__name__", "port")
    call.__qualname__ = f"transformers_adapter({getattr(port, '__module__', '?')}.{call.__name__})"
    call.__wrapped_port__ = port
    return call


def _to_transformers_targets(targets):
    """``labels`` renamed ``class_labels`` in each mapping; anything else passed as is
    (malformed targets reach the port unchanged, so its own reaction is what is seen)."""
    if not isinstance(targets, (list, tuple)):
        return targets
    renamed = []
    for target in targets:
        if isinstance(target, Mapping) and "labels" in target:
            target = {("class_labels" if key == "labels" else key): value for key, value in target.items()}
        renamed.append(target)
    return renamed if isinstance(targets, list) else type(targets)(renamed)


def additive_mask_to_bool(attn_mask):
    """transformers' float additive mask (0 = may attend, -inf = may not) as dnspec's
    bool mask (True = may not attend). None and bool masks pass through; a float mask
    holding anything but 0 and -inf raises rather than being rounded to one of them."""
    if not isinstance(attn_mask, torch.Tensor) or not attn_mask.is_floating_point():
        return attn_mask
    blocked = attn_mask == -torch.inf
    if not bool(torch.all(blocked | (attn_mask == 0))):
        odd = attn_mask[~blocked & (attn_mask != 0)]
        raise ValueError(
            f"transformers adapter: the additive attention mask holds {odd.numel()} value(s) other than 0 and -inf "
            f"(first {float(odd.flatten()[0])!r}); they have no bool equivalent"
        )
    return blocked


def _loader(model: str, module_name: str) -> Callable[[], Implementation]:
    def load() -> Implementation:
        spec = f"transformers-{model}"
        port = import_builder(spec, module_name, FUNCTION_NAME, INSTALL_HINT)
        import transformers

        return Implementation(
            name=spec,
            fn=adapt(port),
            accepts_noise=False,
            version=f"transformers {transformers.__version__}",
            description=(
                f"{module_name}.{FUNCTION_NAME} through dnspec's adapter (class_labels, num_denoising_queries, "
                "float additive mask -> bool); box buffer in the default dtype (float32) whatever the input dtype"
            ),
            extra={"module": module_name, "port": port},
        )

    return load


def builtin_implementations() -> dict[str, Callable[[], Implementation]]:
    """``{'transformers-<model>': loader}`` for every discovered port; when transformers
    is not installed, loaders for the best-known names that raise SpecError saying what
    to install."""
    root = transformers_root()
    if root is None:
        return {
            f"transformers-{model}": missing_loader(f"transformers-{model}", "transformers", INSTALL_HINT)
            for model in _NAMES_WHEN_ABSENT
        }
    ports = discover_ports(root)
    if not ports:
        return {"transformers-rt_detr": _none_in_this_version()}
    return {f"transformers-{model}": _loader(model, module_name) for model, module_name in ports.items()}


def _none_in_this_version() -> Callable[[], Implementation]:
    def load() -> Implementation:
        try:
            version = importlib.metadata.version("transformers")
        except Exception:
            version = "?"
        raise SpecError(
            f"cannot load SPEC 'transformers-rt_detr': the installed transformers {version} has no model defining "
            f"{FUNCTION_NAME}; install a newer one (pip install -U 'dnspec[peers]')"
        )

    return load
