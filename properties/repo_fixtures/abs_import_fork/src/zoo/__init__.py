raise RuntimeError("src/zoo/__init__.py was run: dnspec must not need it")
