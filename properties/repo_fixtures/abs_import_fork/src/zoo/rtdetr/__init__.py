import dnspec_fixture_missing_zoo_dependency  # noqa: F401  (a model zoo's __init__ needs the world)
