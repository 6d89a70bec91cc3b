from .rtdetr import *  # noqa: F401,F403
