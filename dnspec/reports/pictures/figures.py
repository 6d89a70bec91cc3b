"""What every picture shares: the colours (also used by the HTML page's legend), a new
figure on matplotlib's Agg canvas (no pyplot, no GUI backend, no global state), its PNG
bytes, a colour as RGB and an implementation's name short enough for a title.
matplotlib is imported only inside the functions that need it.
"""

from __future__ import annotations

import io
import warnings

# colours (also used by the HTML page's legend)
ALLOWED = "#ffffff"
BLOCKED = "#343a40"
LEAK = "#e03131"  # returned allows, must block
OVER = "#f08c00"  # returned blocks, must allow
GROUP_LINE = "#339af0"
SPLIT_LINE = "#e8590c"
POSITIVE = "#2f9e44"
NEGATIVE = "#7048e8"
RETURNED = "#e03131"
REFERENCE = "#1971c2"


def short_name(name: str, limit: int = 60) -> str:
    """An implementation's name short enough for a title: a file SPEC by its file name."""
    if ":" in name and ("/" in name or "\\" in name):
        path, _, attr = name.rpartition(":")
        name = f"{path.replace(chr(92), '/').rsplit('/', 1)[-1]}:{attr}"
    return name if len(name) <= limit else name[: limit - 3] + "..."


def figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(fig, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def colour_rgb(colour: str):
    from matplotlib.colors import to_rgb

    return to_rgb(colour)
