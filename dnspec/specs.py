"""``dnspec.specs``: the SPEC registry, a public import path kept where users and docs name it.

The module lives in :mod:`dnspec.implementations.specs`; importing this path gives that very module
(the same object, so attributes set on one are seen through the other)."""

import sys

from dnspec.implementations import specs as _module

sys.modules[__name__] = _module
