"""Training: Lightning plumbing shared by every recipe (checkpoints as data, exact resume)."""
