"""Attacks: pure tensor → tensor functions, their registry, the standard suite and its engines."""
