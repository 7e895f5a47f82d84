"""Run a module on a dict of parameter tensors without touching the module: safe across threads.

``torch.func.functional_call`` works by swapping the given tensors into the module for the
duration of the call, so two threads adapting one shared model at once would see each other's
weights. The app serves every session from one cached model, so adaptation must never do that.
`functional_forward` computes the forward pass of the layers our models are built from
(Conv-4, ResNet-12, the sine regressor: convolutions, batch norm, ReLU, max-pooling, linear layers) with
``torch.nn.functional`` directly from the dict. Any other module falls back to
``functional_call`` under a per-module lock: correct, one call at a time.
"""

from __future__ import annotations

import functools
import threading
import weakref

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.MaxPool2d, nn.Linear, nn.Flatten)
_locks: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


@functools.cache
def _custom_forwards() -> dict[type, object]:
    # Imported here: the model modules import this one.
    from playground.models.conv4 import Conv4
    from playground.models.resnet12 import ResidualBlock, ResNet12
    from playground.sinusoid.model import SineRegressor

    def conv4(m: Conv4, p: Params, x: torch.Tensor, prefix: str) -> torch.Tensor:
        z = _forward(m.features, p, x, prefix + "features.").flatten(1)
        return z if m.head is None else _forward(m.head, p, z, prefix + "head.")

    def sine(m: SineRegressor, p: Params, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return _forward(m.net, p, x.reshape(-1, 1), prefix + "net.").reshape(x.shape)

    def residual(m: ResidualBlock, p: Params, x: torch.Tensor, prefix: str) -> torch.Tensor:
        y = _forward(m.body, p, x, prefix + "body.") + _forward(m.shortcut, p, x, prefix + "shortcut.")
        return _forward(m.out, p, y, prefix + "out.")

    def resnet12(m: ResNet12, p: Params, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return _forward(m.blocks, p, x, prefix + "blocks.").mean((-2, -1))

    return {Conv4: conv4, SineRegressor: sine, ResidualBlock: residual, ResNet12: resnet12}


_supported: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def supported(module: nn.Module) -> bool:
    """Whether `functional_forward` computes ``module`` itself (no swapping, no lock)."""
    if module not in _supported:
        if type(module) in _custom_forwards() or isinstance(module, nn.Sequential):
            _supported[module] = all(supported(child) for child in module.children())
        else:
            _supported[module] = type(module) in _LEAVES
    return _supported[module]


def _get(p: Params, module: nn.Module, name: str) -> torch.Tensor | None:
    """The tensor for ``name`` from the dict, else the module's own (buffers, frozen weights): read only."""
    key = name.rsplit(".", 1)[-1]
    return p[name] if name in p else getattr(module, key, None)


def _forward(module: nn.Module, p: Params, x: torch.Tensor, prefix: str) -> torch.Tensor:
    custom = _custom_forwards().get(type(module))
    if custom is not None:
        return custom(module, p, x, prefix)
    if isinstance(module, nn.Sequential):
        for i, child in enumerate(module):
            x = _forward(child, p, x, f"{prefix}{i}.")
        return x
    if isinstance(module, nn.Conv2d):
        w, b = _get(p, module, prefix + "weight"), _get(p, module, prefix + "bias")
        return F.conv2d(x, w, b, module.stride, module.padding, module.dilation, module.groups)
    if isinstance(module, nn.BatchNorm2d):
        w, b = _get(p, module, prefix + "weight"), _get(p, module, prefix + "bias")
        if module.track_running_stats and not module.training:
            mean, var = _get(p, module, prefix + "running_mean"), _get(p, module, prefix + "running_var")
            return F.batch_norm(x, mean, var, w, b, False, 0.0, module.eps)
        # Batch statistics, and never an update of running statistics: this path writes nothing.
        return F.batch_norm(x, None, None, w, b, True, 0.0, module.eps)
    if isinstance(module, nn.ReLU):
        return F.relu(x)
    if isinstance(module, nn.LeakyReLU):
        return F.leaky_relu(x, module.negative_slope)
    if isinstance(module, nn.MaxPool2d):
        return F.max_pool2d(x, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode)
    if isinstance(module, nn.Linear):
        return F.linear(x, _get(p, module, prefix + "weight"), _get(p, module, prefix + "bias"))
    if isinstance(module, nn.Flatten):
        return x.flatten(module.start_dim, module.end_dim)
    raise TypeError(f"no functional forward for {type(module).__name__}")


def _lock_for(module: nn.Module) -> threading.Lock:
    with _locks_guard:
        if module not in _locks:
            _locks[module] = threading.Lock()
        return _locks[module]


def functional_forward(module: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with its parameters taken from ``params`` (names as in ``named_parameters``)."""
    if supported(module):
        return _forward(module, params, x, "")
    with _lock_for(module):
        return functional_call(module, params, (x,))
