"""Ports of released generators to Flax (one package per family, DESIGN §6)."""
