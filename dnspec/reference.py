"""``dnspec.reference``: RT-DETR's CDN builder as dnspec's reference, a public import path kept where users and docs name it.

The module lives in :mod:`dnspec.contract.reference`; importing this path gives that very module
(the same object, so attributes set on one are seen through the other)."""

import sys

from dnspec.contract import reference as _module

sys.modules[__name__] = _module
