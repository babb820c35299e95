"""Distillation: losses, layer pairing, trainer, DDP, checkpoints."""
