raise ImportError("shadowing_fork/yaml/__init__.py ran: dnspec must not run it (and must not take it for PyYAML)")
