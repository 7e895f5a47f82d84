"""An algorithm in a researcher's own module, outside the package: the CLI trains and evaluates it, the app
offers it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from playground.algorithms import available, create_learner
from playground.algorithms.base import REGISTRY
from playground.zoo.checkpoints import CheckpointError, load_learner, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
APP = "../app.py"


def plugin_source(name: str, decorated: bool = True) -> str:
    """A whole plugin: a ProtoNet under another name, as a researcher would start one."""
    return textwrap.dedent(
        f"""
        from playground.algorithms import register
        from playground.algorithms.protonet import ProtoNet


        {"@register" if decorated else ""}
        class Own(ProtoNet):
            name = {name!r}
        """
    )


@pytest.fixture
def research(tmp_path, monkeypatch):
    """A folder of the researcher's own modules on sys.path; the registry, the plugins already imported and
    those modules are put back afterwards, so no other test sees the algorithms registered here."""
    from playground.algorithms import plugins

    folder = tmp_path / "research"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("PLAYGROUND_PLUGINS", raising=False)
    monkeypatch.delenv("PLAYGROUND_CHECKPOINTS", raising=False)
    available()  # the house algorithms are registered first, so that putting the registry back keeps them
    registered = dict(REGISTRY.algorithms)
    # As in a fresh process: no plugin imported yet, the installed entry points not yet read.
    monkeypatch.setattr(plugins, "_imported", set())
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    yield folder
    REGISTRY.algorithms.clear()
    REGISTRY.algorithms.update(registered)
    for module in [m for m in sys.modules if m.startswith("own_")]:
        del sys.modules[module]


def run_cli(cwd: Path, *args: str, plugins: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PLAYGROUND_PLUGINS", None)
    if plugins is not None:
        env["PLAYGROUND_PLUGINS"] = plugins
    return subprocess.run(
        [sys.executable, "-m", "playground", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a real training run in a fresh process
@pytest.mark.omniglot
def test_a_plugin_module_outside_the_package_trains_and_evaluates(omniglot, tmp_path):
    """`python -m playground --plugin MODULE` from the researcher's own folder, as the README tells them."""
    folder = tmp_path / "research"
    folder.mkdir()
    (folder / "own_algo.py").write_text(plugin_source("own-algo"))
    out = folder / "run"
    budget = "--set hidden=8 --query 1 --meta-batch 1 --iterations 2 --val-every 2 --val-episodes 2 --device cpu"
    train = ["train", "--algorithm", "own-algo", *budget.split(), "--out", str(out)]

    r = run_cli(folder, *train)  # without the plugin the algorithm is unknown
    assert r.returncode == 2 and "invalid choice: 'own-algo'" in r.stderr
    r = run_cli(folder, "--plugin", "own_algo", *train)
    assert r.returncode == 0, r.stderr
    assert "own-algo on lake" in r.stdout

    evaluate = ["evaluate", str(out / "best.pt"), "--episodes", "3", "--device", "cpu"]
    r = run_cli(folder, "--plugin", "own_algo", *evaluate, "--card")
    assert r.returncode == 0, r.stderr
    assert "own-algo lake/test 5-way 1-shot, 3 episodes:" in r.stdout
    card = json.loads((out / "best.json").read_text())
    assert card["algorithm"] == "own-algo"
    assert "--plugin own_algo train --algorithm own-algo" in card["training"]["command"]
    r = run_cli(folder, *evaluate, plugins="own_algo")  # the environment variable loads it as well
    assert r.returncode == 0, r.stderr

    # Its checkpoint without its plugin: the missing algorithm and how to load it, not a traceback.
    r = run_cli(folder, *evaluate)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "algorithm 'own-algo', which is not loaded" in r.stderr
    assert "--plugin MODULE" in r.stderr and "PLAYGROUND_PLUGINS" in r.stderr


def test_a_plugin_that_cannot_be_imported_is_named_with_the_reason(research, monkeypatch, capsys):
    from playground.cli import main

    (research / "own_broken.py").write_text("import a_dependency_nobody_installed\n")
    assert main(["--plugin", "own_broken", "train", "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert "plugin module 'own_broken' (from --plugin) could not be imported" in err
    assert "No module named 'a_dependency_nobody_installed'" in err and "Traceback" not in err

    assert main(["--plugin", "own_nowhere", "train"]) == 2
    assert "plugin module 'own_nowhere'" in capsys.readouterr().err

    monkeypatch.setenv("PLAYGROUND_PLUGINS", "own_broken")
    assert main(["train", "--iterations", "1"]) == 2
    assert "plugin module 'own_broken' (from PLAYGROUND_PLUGINS)" in capsys.readouterr().err


def test_a_plugin_may_not_take_a_house_algorithms_name(research, capsys):
    from playground.cli import main

    (research / "own_clash.py").write_text(plugin_source("protonet"))
    assert main(["--plugin", "own_clash", "train"]) == 2
    assert "'own_clash'" in (err := capsys.readouterr().err) and "'protonet' is registered twice" in err


def test_environment_variable_and_entry_points_register_plugins(research, monkeypatch):
    (research / "own_env.py").write_text(plugin_source("own-env"))
    # An installed distribution's entry point, naming the learner class itself (not decorated).
    (research / "own_packaged.py").write_text(plugin_source("own-packaged", decorated=False))
    dist = research / "own_packaged-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: own-packaged\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[playground.algorithms]\nown-packaged = own_packaged:Own\n")
    assert "own-env" not in available()
    monkeypatch.setenv("PLAYGROUND_PLUGINS", " own_env , ")
    assert {"own-env", "own-packaged"} <= set(available())
    assert create_learner("own-packaged", hidden=8).name == "own-packaged"


def test_a_plugin_checkpoint_loads_only_with_its_plugin(research, monkeypatch, tmp_path):
    (research / "own_ckpt.py").write_text(plugin_source("own-ckpt"))
    monkeypatch.setenv("PLAYGROUND_PLUGINS", "own_ckpt")
    path = save_checkpoint(tmp_path / "own.pt", create_learner("own-ckpt", hidden=8))
    assert load_learner(path).name == "own-ckpt"

    # A fresh process without the plugin: the registry no longer has it.
    monkeypatch.delenv("PLAYGROUND_PLUGINS")
    del REGISTRY.algorithms["own-ckpt"]
    with pytest.raises(CheckpointError, match=r"'own-ckpt', which is not loaded.*--plugin MODULE.*PLAYGROUND_PLUGINS"):
        load_learner(path)


def test_checkpoint_folders_from_the_environment_join_the_shipped_ones(tmp_path, monkeypatch):
    from playground.zoo.shipped import shipped_models

    shipped = [m.name for m in shipped_models()]
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for folder, stem in ((mine, "own_one"), (theirs, "own_two")):
        folder.mkdir()
        save_checkpoint(folder / f"{stem}.pt", create_learner("protonet", hidden=8))
    monkeypatch.setenv("PLAYGROUND_CHECKPOINTS", os.pathsep.join([str(mine), str(theirs)]))
    assert [m.name for m in shipped_models()] == [*shipped, "own_one", "own_two"]

    save_checkpoint(theirs / "own_one.pt", create_learner("protonet", hidden=8))
    with pytest.raises(ValueError, match="two models are named 'own_one'"):
        shipped_models()
    monkeypatch.setenv("PLAYGROUND_CHECKPOINTS", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="PLAYGROUND_CHECKPOINTS names .*nowhere, which is not a folder"):
        shipped_models()


def test_the_app_offers_a_plugin_model_and_predicts_with_it(research, monkeypatch, tmp_path):
    from test_app import glyph, upload

    (research / "own_app.py").write_text(plugin_source("own-app"))
    monkeypatch.setenv("PLAYGROUND_PLUGINS", "own_app")
    models = tmp_path / "models"
    save_checkpoint(models / "own_app_model.pt", create_learner("own-app", hidden=8))
    monkeypatch.setenv("PLAYGROUND_CHECKPOINTS", str(models))
    # The catalogue is read once per process (st.cache_resource): cleared, the app rereads it and finds the plugin.
    from playground.ui.resources import catalogue

    catalogue.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=120).run()
        choice = at.multiselect(key="model_choice_widget")
        # offered under its algorithm's short name with its file's name (no card: no figure)
        assert [o for o in choice.options if "own_app_model" in o and "%" not in o], choice.options
        choice.set_value(["own_app_model"]).run()
        assert not at.exception
        for kind in range(3):
            upload(at, kind, [(f"{kind}.png", glyph(kind), "image/png")])
        at.switch_page("pages/adapt_predict.py").run()
        nonce = at.session_state["nonce"]
        at.file_uploader(key=f"q_upload-{nonce}").set_value(("q.png", glyph(1, 6), "image/png"))
        at.run()
        at.button(key="add_q_uploads").click().run()
        at.button(key="adapt").click().run()
        assert not at.exception
        (result,) = at.session_state["results"]["results"]
        assert (result.model, result.algorithm, result.error) == ("own_app_model", "own-app", None)
    finally:
        catalogue.clear()
