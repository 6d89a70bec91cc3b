"""``dnspec.strategies``: the Hypothesis strategies for CDN inputs, a public import path kept where users and docs name it.

The module lives in :mod:`dnspec.generation.strategies`; importing this path gives that very module
(the same object, so attributes set on one are seen through the other)."""

import sys

from dnspec.generation import strategies as _module

sys.modules[__name__] = _module
