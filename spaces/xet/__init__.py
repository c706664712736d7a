"""Xet storage: the content-addressed chunk store that the default ``huggingface_hub`` client (``hf_xet``) speaks.

Pure parts (``hashing``, ``xorb``, ``shard``) parse and verify what a client sends, following the public "Xet
Protocol Specification" (hub-docs ``docs/xet``), each detail checked against xet-core's Rust source. ``store`` keeps
xorbs and file reconstructions on local disk; ``service`` verifies and registers uploads and answers reconstructions.
"""
