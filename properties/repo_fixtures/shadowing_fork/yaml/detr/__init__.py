raise ImportError("shadowing_fork/yaml/detr/__init__.py ran: dnspec must not run it")
