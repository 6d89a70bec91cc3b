from .dist import is_main_process  # noqa: F401
import dnspec_fixture_missing_misc_dependency  # noqa: F401
