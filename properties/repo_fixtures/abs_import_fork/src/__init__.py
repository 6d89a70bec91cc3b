# A model zoo's top package: it imports its submodules by absolute name, the way that fails
# with "partially initialized module" when run from inside an import of src.core.
from src import data  # noqa: F401
from src.zoo import rtdetr  # noqa: F401

raise RuntimeError("src/__init__.py was run: dnspec must not need it")
