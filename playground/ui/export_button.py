"""The "Download your classifier" section: one model's adaptation to the task, as an ONNX file to take home."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st
import torch

from playground.algorithms import MetaLearner
from playground.interactive.export import ONNX_MIME, export_classifier, export_problem, file_name, usage_snippet
from playground.zoo.shipped import ModelEntry


def classifier_download(
    models: Mapping[str, tuple[ModelEntry, MetaLearner]],
    names: Sequence[str],
    support: tuple[torch.Tensor, torch.Tensor],
    class_names: Sequence[str],
    settings: Mapping[str, Mapping[str, float]],
) -> None:
    """A model choice among ``names``, its download button (the file is built on click) and how to use it,
    or the reason it cannot be exported."""
    names = [n for n in names if n in models]
    if not names:
        return
    with st.container(border=True):
        st.markdown("**Download your classifier**: take the model you just taught home, as one ONNX file.")
        left, right = st.columns([1, 2], vertical_alignment="bottom")
        choice = left.selectbox("Model", names, key="export_model")
        entry, learner = models[choice]
        problem = export_problem(learner)
        if problem:
            right.info(problem)
            return
        support_x, support_y = support
        names_now, chosen_settings = list(class_names), dict(settings.get(choice) or {})

        def build() -> bytes:  # runs on click, on its own thread: no Streamlit calls in here
            return export_classifier(learner, support_x, support_y, names_now, chosen_settings, entry)

        right.download_button(
            "Download your classifier",
            data=build,
            file_name=file_name(choice),
            mime=ONNX_MIME,
            icon=":material/download:",
            on_click="ignore",
            key=f"export-{choice}",
        )
        st.caption(
            f"It adapts {choice} to your {len(names_now)} classes with the settings above and classifies each "
            "image on its own, as the app classifies a lone query. It runs in `onnxruntime` without this "
            "project; class names and the input it expects are in its metadata. In Python:"
        )
        st.code(usage_snippet(choice), language="python")
