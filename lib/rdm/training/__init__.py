"""Training: the loop, the recipes (adversarial, noise, TRADES) and data-parallel helpers."""
