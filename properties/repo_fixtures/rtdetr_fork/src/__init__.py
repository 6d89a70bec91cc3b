# A model zoo's top package: importing it imports everything, and needs packages
# dnspec's tests do not install.
from . import core, misc, zoo  # noqa: F401
import dnspec_fixture_missing_top_dependency  # noqa: F401
