"""Export the classifier a model adapted to a person's task as one ONNX file that runs without this project.

`export_classifier` adapts the learner to the support set exactly as the app does (`adapt_and_predict`: the
same test-time settings, the card's where none are given), asks the predictor for its plain torch form
(`Predictor.export_module`: the task's adapted tensors baked in as buffers) and writes it with
``torch.onnx.export``. The file maps images ``float32 [N, 1, 28, 28]`` (ink = 1, paper = 0, as
`playground.interactive.imaging.to_tensor` prepares them) to class probabilities ``[N, n_way]``; its metadata carry the
class names, that input spec, and the model, card, weights fingerprint and settings it came from.

Batch statistics. The app classifies all of a task's queries in one call, and some models let the queries
share statistics: MAML and its kin (transductive batch norm) normalise each layer with the statistics of the
query batch, and soft k-means refines the prototypes with the queries. A lone query is handled apart: MAML
normalises it together with the support set, soft k-means refines with that image alone. The exported file
classifies every image as the app classifies it alone, so an image's answer never depends on what else is
in the batch, and one image alone gets exactly the app's answer. For the models whose queries are already
independent in the app (running batch-norm statistics: ProtoNet, Matching Nets, Relation, Siamese, the
pretrained baseline; fixed support statistics: scratch; pixel neighbour) that is the app's answer for any
batch. For the transductive ones, a batch of several queries in the app can differ from the file's
per-image answers, as it differs from asking the app about each query alone. An ensemble averages over
shifted views of each image, and its members see those views as one batch, in the file as in the app.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import playground
from playground.algorithms import MetaLearner, NotExportable
from playground.interactive.inference import adapt_kwargs
from playground.zoo.checkpoints import card_path, weights_fingerprint
from playground.zoo.shipped import ModelEntry

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
INPUT_SPEC = (
    "images: float32 [N, 1, 28, 28], ink = 1 and paper = 0 (a glyph drawn dark on light, inverted, cropped "
    "to its ink, centred and resized to 28x28, as playground.interactive.imaging.preprocess_image and to_tensor "
    "prepare it); output probabilities: float32 [N, n_way], in the order of class_names"
)
BATCH_NOTE = "each image is classified on its own, as the app classifies a lone query"
# How far the file's probabilities may stray from the predictor's before the export is refused as wrong.
SELF_CHECK_TOLERANCE = 1e-4
ONNX_MIME = "application/octet-stream"


class ExportedClassifier(nn.Module):
    """A predictor's export module for images [N, 1, 28, 28], each alone, ending in class probabilities."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner(images.unsqueeze(1)).squeeze(1).softmax(-1)


def export_problem(learner: MetaLearner) -> str:
    """Why ``learner`` cannot be exported, as a sentence for a page; "" when it can."""
    reason = learner.export_problem()
    return f"{learner.title or learner.name} cannot be exported: {reason}." if reason else ""


def _check_task(support_x: torch.Tensor, support_y: torch.Tensor, class_names: Sequence[str]) -> int:
    if not isinstance(support_x, torch.Tensor) or not isinstance(support_y, torch.Tensor):
        raise ValueError("the support images and labels must be tensors")
    if support_x.numel() == 0 or support_y.numel() == 0:
        raise ValueError("the task has no examples: add at least one example to each class before exporting")
    if support_x.ndim != 4 or tuple(support_x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"support images must be [n, 1, 28, 28], got {list(support_x.shape)}")
    if support_y.ndim != 1 or support_y.shape[0] != support_x.shape[0]:
        raise ValueError(
            f"support labels must be one per support image: {support_y.shape[0]} labels for {support_x.shape[0]} images"
        )
    n_way = int(support_y.max()) + 1
    if len(class_names) != n_way:
        raise ValueError(f"the task has {n_way} classes but {len(class_names)} class names were given")
    return n_way


def adapted_module(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    settings: Mapping[str, float] | None = None,
) -> tuple[ExportedClassifier, dict[str, float]]:
    """The classifier `adapt_and_predict` would use, as a plain module of images [N, 1, 28, 28] -> probabilities,
    and the test-time settings it adapted with (the card's where ``settings`` leaves one unset)."""
    problem = export_problem(learner)
    if problem:
        raise NotExportable(problem)
    kwargs = adapt_kwargs(learner, settings or {})
    device = learner.device
    support_x, support_y = support_x.to(device), support_y.to(device)
    predictor = learner.adapt(support_x, support_y, **kwargs)
    steps, lr = learner.unset_from_card(support_y, kwargs.get("n_steps"), kwargs.get("inner_lr"))
    given = {"n_steps": steps, "inner_lr": lr}
    # Neither given nor on the card: the learner's own, which its option's default is.
    used = {o.name: given.get(o.name) if given.get(o.name) is not None else o.default for o in learner.adapt_options()}
    module = ExportedClassifier(predictor.export_module()).cpu().eval()
    # The file must give the app's answer: check it on the support images, each alone as the file takes them.
    probe = support_x[: min(len(support_x), 4)]
    with torch.no_grad():
        expected = torch.cat([predictor.predict_proba(probe[i : i + 1]) for i in range(len(probe))]).cpu()
        got = module(probe.cpu())
    if not torch.isfinite(expected).all():
        raise NotExportable(
            "adaptation diverged (its probabilities are not finite): lower the inner learning rate or the number "
            "of steps, then export again"
        )
    if not torch.allclose(got, expected, rtol=0, atol=SELF_CHECK_TOLERANCE):
        gap = float((got - expected).abs().max())
        raise NotExportable(
            f"{learner.title or learner.name}'s exported form does not reproduce its predictions "
            f"(off by {gap:.2g}); its algorithm overrides how it predicts without saying how to export that"
        )
    return module, used


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def export_metadata(
    learner: MetaLearner,
    class_names: Sequence[str],
    k_shot: int,
    settings: Mapping[str, float],
    entry: ModelEntry | None = None,
) -> dict[str, str]:
    """The ONNX metadata of an export: strings, as ONNX's ``metadata_props`` hold them."""
    n_way = len(class_names)
    figure = entry.figure(n_way, k_shot) if entry is not None else None
    meta: dict[str, Any] = {
        "class_names": json.dumps(list(class_names), ensure_ascii=False),
        "input": INPUT_SPEC,
        "batch": BATCH_NOTE,
        "model": entry.name if entry is not None else learner.name,
        "algorithm": learner.name,
        "algorithm_title": learner.title or learner.name,
        "task": f"{n_way}-way {k_shot}-shot",
        "test_time_settings": json.dumps(dict(settings)),
        "weights_fingerprint": weights_fingerprint(learner),
        "playground_version": playground.__version__,
    }
    if entry is not None:
        meta["card"] = _relative(card_path(entry.path))
        meta["card_figure"] = (
            json.dumps({"n_way": figure.n_way, "k_shot": figure.k_shot, "text": figure.text})
            if figure
            else f"the card has no {n_way}-way {k_shot}-shot figure"
        )
    return {k: str(v) for k, v in meta.items()}


def to_onnx(module: nn.Module, metadata: Mapping[str, str]) -> bytes:
    """``module`` (images [N, 1, 28, 28] -> probabilities) as checked ONNX bytes with ``metadata``."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice: it is the robust one here
        torch.onnx.export(
            module,
            (torch.zeros(2, 1, 28, 28),),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.producer_name = "playground"
    model.doc_string = "Few-shot classifier exported from the meta-learning playground. " + INPUT_SPEC
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def export_classifier(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    class_names: Sequence[str],
    settings: Mapping[str, float] | None = None,
    entry: ModelEntry | None = None,
) -> bytes:
    """``learner`` adapted to the task, as the bytes of one ONNX file (see the module docstring).

    ``settings`` are the test-time options the app adapted with (`adapt_and_predict`'s); ``entry`` the shipped
    model it came from, for the metadata. Raises ValueError for a task it cannot use and `NotExportable` (a
    ValueError) with the reason for a model that has no export.
    """
    n_way = _check_task(support_x, support_y, class_names)
    module, used = adapted_module(learner, support_x, support_y, settings)
    k_shot = round(support_y.numel() / n_way)
    return to_onnx(module, export_metadata(learner, class_names, k_shot, used, entry))


def file_name(model: str) -> str:
    """The download's file name for a model's export."""
    return f"{model}_classifier.onnx"


SNIPPET = """\
import json
import numpy as np
import onnxruntime as ort  # pip install onnxruntime

session = ort.InferenceSession("{file}")
meta = session.get_modelmeta().custom_metadata_map
class_names = json.loads(meta["class_names"])
# images: float32 [N, 1, 28, 28], ink = 1 and paper = 0 (see meta["input"])
images = np.zeros((1, 1, 28, 28), dtype=np.float32)
(probabilities,) = session.run(None, {{"images": images}})
print([class_names[i] for i in probabilities.argmax(1)])
"""


def usage_snippet(model: str = "MODEL") -> str:
    """Python that loads an exported file with onnxruntime and classifies images with it."""
    return SNIPPET.format(file=file_name(model))
