"""Meta-training in bfloat16 autocast (``train --precision bf16``).

The weights, their gradients and the optimizer stay float32; under ``torch.autocast`` the
convolutions and matrix products run in bfloat16, which a CPU with AVX-512 BF16 (or AMX) computes
faster: 1.2x to 1.6x a meta-training step on the development machine (`python -m bench.maml_speed
--bf16`; GPUs not measured yet). A bfloat16 meta-gradient is a few percent off the float32 one
(cosine above 0.99), far less than the noise of one meta-batch to the next; whether a model then
trains as well is measured, not assumed (`bench.time_to_accuracy --precision bf16`).
Validation, evaluation and the app stay float32.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")


def training_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a meta-training step runs in: bfloat16 autocast on ``device``, or nothing for fp32."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def autocast_state() -> tuple[bool, torch.dtype]:
    """Whether this thread computes under CPU autocast, and in which dtype (autocast is per thread)."""
    return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")


def same_autocast(state: tuple[bool, torch.dtype]) -> contextlib.AbstractContextManager:
    """Enter ``state`` (from `autocast_state`) in another thread, such as a task worker."""
    enabled, dtype = state
    return torch.autocast("cpu", dtype=dtype) if enabled else contextlib.nullcontext()


def compile_autocast() -> str | None:
    """The autocast a step about to be compiled runs under ("cpu:torch.bfloat16"), or None."""
    for device_type in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device_type):
            return f"{device_type}:{torch.get_autocast_dtype(device_type)}"
    return None


def compile_options(autocast: str | None) -> dict | None:
    """``torch.compile`` options for a graph traced under ``autocast`` (from `compile_autocast`).

    torch 2.14's inductor, fusing two bfloat16 batch-norm reductions side by side into one CPU
    kernel, declares their accumulator twice ("conflicting declaration of at_BFloat16_tmp_acc1_vec")
    and the C++ fails to compile; one reduction per kernel compiles. Float32 graphs keep the defaults.
    """
    return {"cpp.max_horizontal_fusion_size": 1} if autocast is not None else None
