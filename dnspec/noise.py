"""``dnspec.noise``: the randomness of a CDN call (NoiseDraw, draw_noise), a public import path kept where users and docs name it.

The module lives in :mod:`dnspec.contract.noise`; importing this path gives that very module
(the same object, so attributes set on one are seen through the other)."""

import sys

from dnspec.contract import noise as _module

sys.modules[__name__] = _module
