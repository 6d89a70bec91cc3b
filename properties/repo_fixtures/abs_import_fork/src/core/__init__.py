# Defines `register`, which the builder imports by absolute name (from src.core import register).
from src.core.workspace import register  # noqa: F401
