REGISTERED = {}


def register(fn):
    """Record ``fn`` by name (a registry, as detector repos keep one)."""
    REGISTERED[fn.__name__] = fn
    return fn
