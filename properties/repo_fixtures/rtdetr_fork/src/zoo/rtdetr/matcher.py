import dnspec_fixture_missing_scipy_extra  # noqa: F401  (a dependency that is not installed)


def match(*args):
    raise NotImplementedError
