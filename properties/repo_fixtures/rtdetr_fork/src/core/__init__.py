# Defines the name `register` that the builder imports from this package (so dnspec has
# to run this __init__.py when the builder asks for it).
from .workspace import register  # noqa: F401

INIT_RAN = True
