"""Backbones, projection heads and checkpoint import/export."""
