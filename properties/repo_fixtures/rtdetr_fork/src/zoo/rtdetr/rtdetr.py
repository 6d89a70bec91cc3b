import dnspec_fixture_missing_model_dependency  # noqa: F401  (the whole model needs it)


class RTDETR:
    pass
