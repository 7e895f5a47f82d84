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


def refuse_autocast(what: str) -> None:
    """Raise if a step that cannot run under autocast is asked to."""
    for device_type in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device_type):
            raise ValueError(
                f"{what} runs in float32 only (torch 2.14's inductor failed to compile its bfloat16 graph on a "
                "CPU): use --precision bf16 with --task-batching threads or loop, or --precision fp32"
            )
