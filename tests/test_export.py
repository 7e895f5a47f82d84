"""Export the adapted classifier to ONNX: every exportable shipped model, loaded in a fresh process with
onnxruntime only, gives the app's probabilities; broken input and models without an export say why."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from playground.algorithms import NotExportable, create_learner
from playground.algorithms.maml import MAML
from playground.interactive.export import export_classifier, export_problem, file_name, usage_snippet
from playground.interactive.imaging import to_tensor
from playground.interactive.inference import adapt_and_predict
from playground.zoo.shipped import shipped_models

TOLERANCE = 1e-4  # on probabilities
# Models whose queries share statistics in the app when several are classified in one call (module docstring
# of playground.interactive.export): the file must match the app's answer for each query alone.
TRANSDUCTIVE = {"maml", "anil", "metasgd", "reptile", "meta-lstm", "protonet-softkmeans", "ensemble"}

# Runs in a fresh interpreter: onnxruntime and numpy only, never this project or torch.
LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import onnxruntime as ort

    images = np.load("queries.npy")
    out = {}
    for name in json.load(open("models.json")):
        session = ort.InferenceSession(name + ".onnx", providers=["CPUExecutionProvider"])
        (batch,) = session.run(None, {"images": images})
        singles = [session.run(None, {"images": images[i : i + 1]})[0][0].tolist() for i in range(len(images))]
        meta = session.get_modelmeta().custom_metadata_map
        out[name] = {"batch": batch.tolist(), "singles": singles, "meta": dict(meta)}
    assert "torch" not in sys.modules and "playground" not in sys.modules
    json.dump(out, open("out.json", "w"))
    """
)


@pytest.fixture(scope="module")
def task(omniglot):
    from playground.interactive.sample_tasks import sample_user_task

    sampled = sample_user_task(omniglot, 5, 1, 1, seed=11)
    support_x, support_y, _ = sampled.task.support()
    return support_x, support_y, to_tensor(sampled.queries), list(sampled.task.class_names)


@pytest.fixture(scope="module")
def exported(task, tmp_path_factory):
    """A shipped model's entry, learner, and its file's answers read back in a fresh process, by name.

    Each model is exported when a test first asks for it, so a run that deselects some cases exports only
    the models it checks."""
    support_x, support_y, queries, names = task
    folder = tmp_path_factory.mktemp("onnx")
    np.save(folder / "queries.npy", queries.numpy())
    entries = {entry.name: entry for entry in shipped_models()}
    done = {}

    def get(name: str):
        if name not in done:
            entry = entries[name]
            learner = entry.load("cpu", warm=False)
            answer = None
            if not export_problem(learner):
                (folder / f"{name}.onnx").write_bytes(
                    export_classifier(learner, support_x, support_y, names, entry=entry)
                )
                (folder / "models.json").write_text(json.dumps([name]))
                run = subprocess.run(
                    [sys.executable, "-c", LOADER], cwd=folder, capture_output=True, text=True, timeout=300
                )
                assert run.returncode == 0, run.stderr
                answer = json.loads((folder / "out.json").read_text())[name]
            done[name] = (entry, learner, answer, folder)
        return done[name]

    return get


# The quick loop (-m "not slow") exports one shipped model per export path. The others take a path a quick
# case already takes: MAML's export_module serves ANIL, Meta-SGD, Reptile and Meta-LSTM (maml_lake checks it),
# and a fresh ensemble and scratch learner go through theirs in test_a_fresh_learner_exports_in_each_batch_norm_mode.
SAME_PATH_AS_A_QUICK_CASE = {"anil_lake", "metasgd_lake", "reptile_lake", "metalstm_lake", "ensemble_lake", "scratch"}
SHIPPED = [
    pytest.param(m.name, marks=pytest.mark.slow) if m.name in SAME_PATH_AS_A_QUICK_CASE else m.name
    for m in shipped_models()
]


@pytest.mark.omniglot
@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_exports_and_gives_the_apps_answers(name, exported, task):
    entry, learner, answer, _ = exported(name)
    support_x, support_y, queries, names = task
    if answer is None:
        assert learner.name in ("mann",), f"{name} should export: {export_problem(learner)}"
        assert "cannot be exported: " in export_problem(learner)
        return
    batch, singles = np.array(answer["batch"]), np.array(answer["singles"])
    assert batch.shape == (len(queries), len(names))
    # Each image is classified on its own: alone or in a batch, the same answer.
    np.testing.assert_allclose(singles, batch, rtol=0, atol=1e-6)
    if learner.name in TRANSDUCTIVE:
        app = np.concatenate(
            [
                adapt_and_predict(name, learner, support_x, support_y, queries[i : i + 1]).proba
                for i in range(len(queries))
            ]
        )
    else:
        app = adapt_and_predict(name, learner, support_x, support_y, queries).proba
        alone = adapt_and_predict(name, learner, support_x, support_y, queries[:1]).proba
        np.testing.assert_allclose(singles[:1], alone, rtol=0, atol=TOLERANCE)
    gap = np.abs(batch - app).max()
    print(f"{name}: max |file - app| = {gap:.2e}")
    assert gap <= TOLERANCE, f"{name}: the file's probabilities are {gap:.2e} from the app's"
    meta = answer["meta"]
    assert json.loads(meta["class_names"]) == names
    assert meta["model"] == name and meta["algorithm"] == learner.name
    assert "28" in meta["input"] and "ink = 1" in meta["input"]
    assert meta["card"].endswith(f"{name}.json")
    assert "5-way" in meta["task"] and meta["playground_version"]
    from playground.zoo.checkpoints import weights_fingerprint

    assert meta["weights_fingerprint"] == weights_fingerprint(learner)
    if learner.adapts_with("n_steps"):
        assert "n_steps" in json.loads(meta["test_time_settings"])


@pytest.mark.omniglot
def test_the_snippet_shown_on_the_page_runs_on_an_export(exported):
    entry, _, answer, folder = exported("protonet_lake")
    (folder / file_name(entry.name)).write_bytes((folder / f"{entry.name}.onnx").read_bytes())
    run = subprocess.run(
        [sys.executable, "-c", usage_snippet(entry.name)], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert any(name in run.stdout for name in json.loads(answer["meta"]["class_names"]))


@pytest.mark.omniglot
def test_the_apps_settings_are_the_ones_exported(task):
    """Settings the page passes (fewer steps) change the file as they change the app's predictions."""
    support_x, support_y, queries, names = task
    learner = next(m for m in shipped_models() if m.name == "maml_lake").load("cpu", warm=False)
    import onnxruntime as ort

    blob = export_classifier(learner, support_x, support_y, names, {"n_steps": 0})
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": queries[:1].numpy()})
    app = adapt_and_predict("maml", learner, support_x, support_y, queries[:1], settings={"n_steps": 0}).proba
    np.testing.assert_allclose(got, app, rtol=0, atol=TOLERANCE)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["test_time_settings"])["n_steps"] == 0


# -- broken and hostile input ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_task():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(4, 1, 28, 28, generator=g), torch.tensor([0, 0, 1, 1]), ["a", "b"])


def test_an_empty_task_is_refused_with_a_clear_message():
    learner = create_learner("protonet")
    with pytest.raises(ValueError, match="no examples"):
        export_classifier(learner, torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), [])


@pytest.mark.parametrize(
    "x, y, names, message",
    [
        (torch.rand(4, 1, 32, 32), torch.tensor([0, 0, 1, 1]), ["a", "b"], r"\[n, 1, 28, 28\]"),
        (torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 1]), ["a", "b"], "3 labels for 4 images"),
        (torch.rand(4, 1, 28, 28), torch.tensor([0, 0, 1, 1]), ["a", "b", "c"], "2 classes but 3 class names"),
        (torch.rand(4, 1, 28, 28), torch.tensor([0, 0, 2, 2]), ["a", "b", "c"], "missing"),
    ],
)
def test_mismatched_shapes_are_refused_with_a_clear_message(x, y, names, message):
    with pytest.raises(ValueError, match=message):
        export_classifier(create_learner("protonet"), x, y, names)


def test_a_model_without_an_export_says_why(small_task):
    mann = create_learner("mann", hidden=8, controller_size=16, memory_slots=8, memory_size=8)
    with pytest.raises(NotExportable, match="MANN cannot be exported: it classifies by a recurrent controller"):
        export_classifier(mann, *small_task)
    ensemble = create_learner("ensemble", members=[{"algorithm": "protonet"}, {"algorithm": "mann"}])
    assert "member 2 (MANN) cannot be" in export_problem(ensemble)


def test_a_learner_that_changes_the_forward_is_not_exported_as_if_it_had_not(small_task):
    class Doubled(MAML):
        name = "doubled-maml-for-a-test"

        def forward_fast(self, fast, x):
            return 2 * super().forward_fast(fast, x)

    with pytest.raises(NotExportable, match="not MAML's Conv-4"):
        export_classifier(Doubled().eval(), *small_task)


def test_a_fresh_learner_exports_in_each_batch_norm_mode(small_task):
    """Per-example batch norm, view averaging and a fit from scratch also reproduce the predictor (synthetic images)."""
    import onnxruntime as ort

    x, y, names = small_task
    for learner in (
        create_learner("maml", bn="per_example", hidden=8),
        create_learner("ensemble", members=[{"algorithm": "maml", "config": {"hidden": 8}}], view_shift=1),
        create_learner("protonet-softkmeans", hidden=8, refine_steps=2),
        create_learner("pretrained", hidden=8, head="linear", n_classes=3),
        create_learner("scratch", hidden=8, test_inner_steps=5),
    ):
        blob = export_classifier(learner, x, y, names)
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        predictor = learner.adapt(x, y)
        for i in range(len(x)):
            (got,) = session.run(None, {"images": x[i : i + 1].numpy()})
            np.testing.assert_allclose(got, predictor.predict_proba(x[i : i + 1]).numpy(), rtol=0, atol=TOLERANCE)


# -- in the browser ---------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.omniglot
def test_download_your_classifier_in_the_browser(omniglot, tmp_path, app_server):
    """Try a sample task, click "Download your classifier": the file loads in onnxruntime with the task's classes."""
    import onnxruntime as ort

    from browser import (
        browser,
        click_button,
        open_app,
        page_exceptions,
        require_chromium,
        screenshot,
        wait_for_download,
        wait_for_text,
        wait_until_idle,
    )

    require_chromium()
    url = app_server
    with browser(1400, 1000, download_dir=tmp_path) as driver:
        open_app(driver, url)
        click_button(driver, "Try a sample task")
        wait_for_text(driver, "green is right", timeout=120)
        wait_until_idle(driver)
        body = wait_for_text(driver, "Download your classifier")
        assert "import onnxruntime as ort" in body  # the snippet shows on the page
        click_button(driver, "Download your classifier")
        path = wait_for_download(tmp_path, ".onnx", timeout=120)
        driver.execute_script(
            "const b = [...document.querySelectorAll('button')].find(b => b.innerText.includes('Download your'));"
            "b.scrollIntoView({block: 'center'});"
        )
        screenshot(driver, "export-download-your-classifier")
        assert not page_exceptions(driver)
        body = driver.execute_script("return document.body.innerText")
    session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    names = json.loads(meta["class_names"])
    assert len(names) == 5 and all(name in body for name in names), (names, body[-2000:])
    assert path.name == file_name(meta["model"])
    (proba,) = session.run(None, {"images": np.zeros((3, 1, 28, 28), np.float32)})
    assert proba.shape == (3, 5) and np.allclose(proba.sum(1), 1, atol=1e-5)
