"""Implementations: how dnspec finds a builder under test (the SPEC registry, the file loader), its fast builders and the adapters for every real peer."""
