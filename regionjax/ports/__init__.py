"""Ports of released generators to Flax (one package per family, docs/adding_a_generator.md)."""
