"""Only ``playground/ui/`` imports Streamlit: the CLI, training and anyone's ``import playground`` run without it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "playground"
UI = LIBRARY / "ui"


def is_streamlit(module: str) -> bool:
    """Streamlit itself, or one of its components (``streamlit_drawable_canvas`` and the like)."""
    top = module.split(".")[0]
    return top == "streamlit" or top.startswith("streamlit_")


def streamlit_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of Streamlit in ``path``, at any depth (inside functions too),
    including ``importlib.import_module("streamlit")`` and ``__import__`` with a literal name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules = [node.args[0].value]
        else:
            continue
        found += [(node.lineno, m) for m in modules if is_streamlit(m)]
    return found


def test_only_playground_ui_imports_streamlit():
    outside = [p for p in LIBRARY.rglob("*.py") if UI not in p.parents]
    assert len(outside) > 40, "the scan found too few library files to mean anything"
    offenders = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in outside for line, m in streamlit_imports(p)]
    assert not offenders, "Streamlit is imported outside playground/ui/ (move the code there):\n" + "\n".join(offenders)


def test_the_scan_sees_the_imports_it_looks_for(tmp_path):
    # The ui package does import Streamlit: the scan must see it there, or an empty result above proves nothing.
    assert any(streamlit_imports(p) for p in UI.rglob("*.py"))
    hidden = tmp_path / "hidden.py"
    hidden.write_text(
        textwrap.dedent(
            """
            import importlib


            def later():
                from streamlit.runtime import exists
                import streamlit_drawable_canvas as canvas
                return importlib.import_module("streamlit"), exists, canvas
            """
        )
    )
    assert [m for _, m in streamlit_imports(hidden)] == ["streamlit.runtime", "streamlit_drawable_canvas", "streamlit"]


def test_importing_the_library_loads_no_streamlit():
    # What the scan cannot see: Streamlit pulled in through another package. A fresh interpreter imports
    # every module outside playground/ui/ (not __main__, which would run the CLI) and looks.
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import playground

        for m in pkgutil.walk_packages(playground.__path__, "playground."):
            if not m.name.startswith("playground.ui") and m.name.split(".")[-1] != "__main__":
                importlib.import_module(m.name)
        assert playground.__file__.startswith(sys.argv[1]), playground.__file__
        print(sorted(m for m in sys.modules if m.split(".")[0].startswith("streamlit")))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(LIBRARY)], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_the_app_and_its_pages_share_one_copy_of_each_ui_module():
    # st.cache_resource keys a cache by its function's module: a module imported under two names (as a
    # sys.path entry once allowed) would load every model twice.
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../app.py", default_timeout=120).run()
    assert not at.exception
    names: dict[str, list[str]] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().parent == UI:
            names.setdefault(Path(file).name, []).append(name)
    assert {"session.py", "resources.py", "widgets.py", "canvas.py", "display.py"} <= set(names), names
    assert all(found == [f"playground.ui.{file[:-3]}"] for file, found in names.items() if file != "__init__.py"), names
