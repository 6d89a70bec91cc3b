"""Which peers' built-in SPEC names to run: ``python -m dnspec.implementations.adapters.installed``.

:func:`peer_specs` lists the built-in names of every adapter provider in
``dnspec.implementations.specs.BUILTIN_PROVIDERS`` (the modules under ``dnspec.implementations.adapters``) whose peer
package is installed here, **whether or not it imports**: ``dnspec matrix`` given such a
name gives the peer a row that says why it cannot be loaded, where its default list
(names that load) would leave it out. A peer package that is absent contributes nothing.
Nothing is imported but dnspec's adapter modules; the peers are found with
``importlib.util.find_spec``.

``ci/peers.sh`` passes this list, one name a line, to ``dnspec matrix reference ...``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

ADAPTERS_PREFIX = "dnspec.implementations.adapters."
# the importable package behind each adapter module that does not name it as PACKAGE
PACKAGES = {
    "dnspec.implementations.adapters.transformers_peers": "transformers",
    "dnspec.implementations.adapters.ultralytics_peer": "ultralytics",
}


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def peer_specs(providers=None) -> list[str]:
    """Built-in names from the adapter providers whose peer package is installed, in
    provider order (default providers: ``dnspec.implementations.specs.BUILTIN_PROVIDERS``)."""
    if providers is None:
        from dnspec.implementations.specs import BUILTIN_PROVIDERS as providers
    names: list[str] = []
    for provider in providers:
        module_name, func_name = provider.split(":")
        if not module_name.startswith(ADAPTERS_PREFIX):
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        package = getattr(module, "PACKAGE", None) or PACKAGES.get(module_name)
        if package is None or not _installed(package):
            continue
        names.extend(name for name in getattr(module, func_name)() if name not in names)
    return names


def main() -> int:
    for name in peer_specs():
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
