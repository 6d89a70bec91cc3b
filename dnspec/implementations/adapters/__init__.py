"""Adapters for real peers: each maps a peer's conventions (key names, mask dtype, meta
key names) onto dnspec's, and never its semantics."""
