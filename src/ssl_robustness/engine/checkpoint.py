"""Training checkpoints: everything needed to continue a run bit-for-bit on CPU."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import save_torch
from ..errors import UserError


def capture_rng(sample_rng: np.random.Generator, aug_gen: torch.Generator) -> dict[str, Any]:
    state = {
        "python": list(random.getstate()[1]),
        "numpy_global": _numpy_global_state(),
        "torch": torch.get_rng_state(),
        "sampler": sample_rng.bit_generator.state,
        "augment": aug_gen.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(
    state: dict[str, Any], sample_rng: np.random.Generator, aug_gen: torch.Generator
) -> None:
    random.setstate((3, tuple(state["python"]), None))
    keys, pos, has_gauss, cached = state["numpy_global"]
    np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    sample_rng.bit_generator.state = state["sampler"]
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_global_state() -> list[Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return [keys.tolist(), int(pos), int(has_gauss), float(cached)]


def save_checkpoint(path: Path, **state: Any) -> None:
    save_torch(path, state)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint` (weights_only: tensors and plain data)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file cannot be trusted
        raise UserError(
            f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc}); "
            "delete it to restart this run"
        ) from None
