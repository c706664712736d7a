"""Backends: local (sandboxed processes), docker and kubernetes, one protocol (``spaces.runtime.contracts``)."""
