"""The algorithm registry: every module in this package that defines a @register'ed learner, and the
plugin modules named outside it (`playground.algorithms.plugins`)."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from playground.algorithms.base import (
    REGISTRY,
    AdaptOption,
    DecisionMatrix,
    MetaLearner,
    NotExportable,
    Predictor,
    StepRecord,
    StepStats,
    register,
)
from playground.algorithms.plugins import HOW_TO_LOAD, PluginError, load_plugins

_SKIP = {"base", "plugins"}


@functools.cache
def _import_house_algorithms() -> None:
    # Importing every module is what makes "one file per algorithm" enough to add one. Once: the
    # package does not change while the process runs, and the app asks on every visitor's page run.
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SKIP and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def _discover() -> None:
    _import_house_algorithms()
    # After the house algorithms, so that a plugin may subclass one of them.
    load_plugins()


def available() -> list[str]:
    _discover()
    return sorted(REGISTRY.algorithms)


def learner_class(algorithm: str) -> type[MetaLearner]:
    if algorithm not in REGISTRY.algorithms:  # registered stays registered: look further only for a new name
        _discover()
    try:
        return REGISTRY.algorithms[algorithm]
    except KeyError:
        raise ValueError(
            f"unknown algorithm {algorithm!r}; choose one of {', '.join(available())} ({HOW_TO_LOAD})"
        ) from None


def create_learner(algorithm: str, **config: Any) -> MetaLearner:
    """`create_learner('maml', inner_lr=0.4, ...)`: build a registered algorithm by name."""
    learner = learner_class(algorithm)(**config)
    learner.eval()
    return learner


__all__ = [
    "AdaptOption",
    "DecisionMatrix",
    "HOW_TO_LOAD",
    "MetaLearner",
    "NotExportable",
    "PluginError",
    "Predictor",
    "StepRecord",
    "StepStats",
    "available",
    "create_learner",
    "learner_class",
    "load_plugins",
    "register",
]
