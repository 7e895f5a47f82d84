"""Algorithms defined outside this package: plugin modules that join the registry when imported.

A plugin is any importable module whose learners are decorated with `@register`. It is loaded from
three places, each a usual Python form:

* ``python -m playground --plugin MODULE ...`` (repeatable), for one command;
* the environment variable ``PLAYGROUND_PLUGINS`` (comma-separated module names), for the CLI and the app;
* the entry-point group ``playground.algorithms`` of an installed distribution, for a packaged algorithm.

Importing a plugin runs its code, as importing any module does: only modules the person named, or
installed, are imported; a checkpoint still never runs code (it only names a registered algorithm).
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Iterable, Sequence
from importlib import metadata

from playground.algorithms.base import MetaLearner, register

ENV = "PLAYGROUND_PLUGINS"
ENTRY_POINT_GROUP = "playground.algorithms"
HOW_TO_LOAD = (
    "an algorithm defined outside playground/algorithms/ is loaded with `python -m playground --plugin MODULE ...` "
    f"or the environment variable {ENV}=MODULE[,MODULE...] (for the app too)"
)


class PluginError(ValueError):
    """A plugin module or entry point could not be loaded; the message names it and says why."""


_imported: set[str] = set()
_entry_points_loaded = False


def env_modules() -> list[str]:
    """The module names in ``PLAYGROUND_PLUGINS``, in order, blanks dropped."""
    return [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]


def import_plugin(module: str, source: str = "--plugin") -> None:
    """Import ``module`` so that its `@register`'ed learners join the registry (once per process).

    ``source`` says where the name came from, for the message when the import fails.
    """
    if module in _imported:
        return
    try:
        importlib.import_module(module)
    except Exception as exc:  # the plugin's own code may raise anything; the person needs the name and why
        raise PluginError(
            f"plugin module {module!r} (from {source}) could not be imported: {type(exc).__name__}: {exc}"
        ) from exc
    _imported.add(module)


def load_entry_points() -> None:
    """Load every entry point of the ``playground.algorithms`` group of the installed distributions (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # as in import_plugin: a broken installed plugin is named, not a traceback
            dist = ep.dist.name if ep.dist is not None else "an installed distribution"
            raise PluginError(
                f"entry point {ep.name!r} = {ep.value!r} of {dist} (group {ENTRY_POINT_GROUP}) could not be "
                f"loaded: {type(exc).__name__}: {exc}"
            ) from exc
        # An entry point may name the learner class itself rather than its module; registering it is then
        # what `@register` would have done (a class already registered is left as it is).
        if isinstance(loaded, type) and issubclass(loaded, MetaLearner):
            register(loaded)
    _entry_points_loaded = True


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import ``modules`` (from ``--plugin``), then those of ``PLAYGROUND_PLUGINS``, then the entry points."""
    for module in modules:
        import_plugin(module)
    for module in env_modules():
        import_plugin(module, source=ENV)
    load_entry_points()


def add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    """``--plugin MODULE`` (repeatable) on ``parser``."""
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"import MODULE first, so that the algorithms it @register's can be trained and evaluated "
        f"(repeatable; {ENV} and the {ENTRY_POINT_GROUP!r} entry points load plugins too)",
    )


def plugin_flags(argv: Sequence[str]) -> list[str]:
    """The ``--plugin`` modules of a command line, read before the full parser is built: argparse fixes
    ``--algorithm``'s choices when it is built, so the plugins must be in the registry by then."""
    pre = argparse.ArgumentParser(add_help=False)
    add_plugin_flag(pre)
    return pre.parse_known_args(list(argv))[0].plugin
