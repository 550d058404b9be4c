"""Evaluation of a representation: features, linear probe, kNN, fine-tuning, metrics."""
