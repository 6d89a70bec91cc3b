"""A module whose import raises (a missing compiled extension, say)."""

raise ImportError("cdn_ext: compiled extension not built; run `python setup.py build_ext`")


def build(*args):  # never reached
    return None
