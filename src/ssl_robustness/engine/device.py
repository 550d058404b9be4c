"""Device choice, mixed precision and memory format.

AMP on GPU, fp32 elsewhere; channels_last on CPU and GPU (on 2 CPU cores it made a small
ResNet's forward+backward 1.4-1.6x faster: benchmarks/throughput.py); on the host, freed
activation memory is kept for the next step (`host_memory`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import UserError
from .host_memory import keep_freed_memory


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: 'cuda' asked for but no CUDA device is available")
    return torch.device(name)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU has it (no loss scaling needed), else fp16; None (fp32) off GPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    dtype = amp_dtype(device)
    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield


def make_scaler(device: torch.device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


def channels_last(device: torch.device) -> bool:
    return device.type in ("cpu", "cuda")


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model on `device` in its memory format. On CPU, this process's glibc malloc is
    also told to keep freed memory from here on (process-wide: `host_memory`)."""
    if device.type == "cpu":
        keep_freed_memory()
    model = model.to(device)
    if channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    return model


def to_memory_format(x: torch.Tensor) -> torch.Tensor:
    """Image batches in the layout `prepare_model` gave the weights."""
    if channels_last(x.device):
        return x.contiguous(memory_format=torch.channels_last)
    return x
