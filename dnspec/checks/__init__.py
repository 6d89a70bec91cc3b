"""Checks: every property of the contract, one check per invariant, and the registry that pytest and the CLI both run."""
