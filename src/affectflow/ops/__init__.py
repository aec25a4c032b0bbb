"""Operator tools: ``affectflow status``, ``inspect``, ``sample`` and ``tiny-models``."""
