"""Lake et al.'s 20 original one-shot runs (all_runs.zip): 20-way 1-shot within one alphabet."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground.data.omniglot import DataError, Omniglot, default_data_dir, preprocess_omniglot_image

HUMAN_ERROR = 0.045  # people, Lake et al. 2015
RUNS = 20
RUN_WAYS = 20


@dataclass
class LakeRun:
    name: str
    train_x: torch.Tensor  # [20, 1, 28, 28] float, ink = 1; class i is train_x[i]
    test_x: torch.Tensor  # [20, 1, 28, 28]
    test_y: torch.Tensor  # [20] index of the right training image
    train_files: list[str]
    test_files: list[str]


def error_percent(error: float) -> str:
    """An error rate as a percentage: "4.25", "6.3", "79.0". Lake's runs count errors in quarters of a
    percent (one drawing of 400), so one decimal would round 4.25 down to 4.2."""
    text = f"{100 * error:.2f}"
    return text[:-1] if text.endswith("0") else text


@dataclass
class LakeResult:
    run_errors: list[float]
    predictions: list[list[int]]

    @property
    def error(self) -> float:
        return float(np.mean(self.run_errors))

    def format(self) -> str:
        return f"{error_percent(self.error)}% error (people: {error_percent(HUMAN_ERROR)}%)"


def _to_tensor(data: bytes, name: str) -> torch.Tensor:
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = preprocess_omniglot_image(img)
    except Exception as exc:
        raise DataError(f"cannot read {name} in all_runs.zip ({exc})") from exc
    return torch.from_numpy(arr).float().div(255).unsqueeze(0)


def load_lake_runs(path: str | Path | None = None) -> list[LakeRun]:
    """Read the 20 runs from ``all_runs.zip`` (or a folder holding it, or the extracted runs)."""
    path = Path(path) if path is not None else default_data_dir()
    if path.is_dir() and (path / "all_runs.zip").is_file():
        path = path / "all_runs.zip"
    files: dict[str, bytes] = {}
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
        except zipfile.BadZipFile as exc:
            raise DataError(f"{path} is not a readable zip ({exc})") from exc
    elif path.is_dir() and (path / "run01").is_dir():
        files = {str(p.relative_to(path)): p.read_bytes() for p in path.glob("run*/**/*") if p.is_file()}
    else:
        raise DataError(
            f"missing {path / 'all_runs.zip'}: Lake's one-shot runs (all_runs.zip from the Omniglot repository)"
        )
    runs = []
    for r in range(1, RUNS + 1):
        run = f"run{r:02d}"
        labels_file = f"{run}/class_labels.txt"
        if labels_file not in files:
            raise DataError(f"{path} has no {labels_file}")
        pairs = [line.split() for line in files[labels_file].decode().splitlines() if line.strip()]
        train_files = sorted(n for n in files if n.startswith(f"{run}/training/") and n.endswith(".png"))
        index = {n: i for i, n in enumerate(train_files)}
        test_files = [t for t, _ in pairs]
        missing = [n for n in test_files + [c for _, c in pairs] if n not in files]
        if missing:
            raise DataError(f"{path}: {run} lists files that are missing: {missing[:3]}")
        runs.append(
            LakeRun(
                run,
                torch.stack([_to_tensor(files[n], n) for n in train_files]),
                torch.stack([_to_tensor(files[n], n) for n in test_files]),
                torch.tensor([index[c] for _, c in pairs]),
                train_files,
                test_files,
            )
        )
    return runs


def validation_runs(data: Omniglot, n_runs: int = 100, seed: int = 0) -> list[LakeRun]:
    """Runs built the way Lake's are, from the `lake` protocol's meta-validation alphabets.

    Each run takes one alphabet (in turn), up to 20 of its characters, and two people: the first
    drew the training images, the second the test images, in shuffled order. Settings (test-time
    views, inner steps, members of an ensemble) are chosen on these, so that Lake's own 20 runs
    are only ever measured, never tuned on. Omniglot's drawings are stored in drawer order, so
    drawing d of every character of an alphabet is by the same person.
    """
    from playground.data.protocols import lake_validation_alphabets

    alphabets = lake_validation_alphabets(data)
    g = torch.Generator().manual_seed(seed)
    all_names = data.names()
    runs = []
    for r in range(n_runs):
        alphabet = alphabets[r % len(alphabets)]
        idx = data.indices("images_background", {alphabet})
        chars = idx[torch.randperm(len(idx), generator=g)[:RUN_WAYS].numpy()]
        train_d, test_d = torch.randperm(data.images.shape[1], generator=g)[:2].tolist()
        order = torch.randperm(len(chars), generator=g)
        images = torch.from_numpy(data.images[chars]).float().div(255).unsqueeze(2)  # [n, 20, 1, 28, 28]
        names = [all_names[c] for c in chars]
        runs.append(
            LakeRun(
                f"val{r + 1:03d} {alphabet}",
                images[:, train_d],
                images[order, test_d],
                order,
                [f"{n} drawing {train_d + 1}" for n in names],
                [f"{names[i]} drawing {test_d + 1}" for i in order.tolist()],
            )
        )
    return runs


def one_to_one(log_proba: torch.Tensor) -> torch.Tensor:
    """The assignment of test drawings to training drawings, each used once, of highest total log-probability.

    Lake's runs pair each of the 20 test drawings with a different training drawing; a model that
    knows this can decide all 20 together (Hungarian algorithm) instead of each alone.
    """
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-log_proba.detach().cpu().double().numpy())
    picks = torch.empty(len(rows), dtype=torch.long)
    picks[torch.as_tensor(rows)] = torch.as_tensor(cols, dtype=torch.long)
    return picks


def lake_settings(learner, n_steps: int | None = None, inner_lr: float | None = None) -> dict[str, float]:
    """The settings Lake's runs are adapted with: those given; the others as the model card's Lake figure was
    measured (a setting that figure does not record was the learner's own), or without such a figure as the
    card's nearest figure was."""
    lake = learner.test_time.for_lake_runs()
    if lake is None:
        lake = {}
    else:  # named in full, so that `adapt` takes no setting from another figure
        lake = {**{o.name: o.default for o in learner.adapt_options()}, **lake}
    n_steps = lake.get("n_steps") if n_steps is None else n_steps
    inner_lr = lake.get("inner_lr") if inner_lr is None else inner_lr
    return learner.settings_for(RUN_WAYS, 1, n_steps, inner_lr)


def evaluate_lake_runs(
    learner,
    runs: list[LakeRun],
    n_steps: int | None = None,
    *,
    inner_lr: float | None = None,
    one_to_one_assignment: bool = False,
) -> LakeResult:
    """Adapt to each run's 20 training images (with ``n_steps`` of ``inner_lr`` where given, else those of the
    model card's Lake figure), classify its 20 test images; error per run.

    With ``one_to_one_assignment`` the 20 test drawings are decided together, each training drawing
    used once (`one_to_one`): a transductive use of how the runs are built, which people taking
    the test did not have, so it is reported apart from the standard figure.
    """
    errors, preds = [], []
    settings = lake_settings(learner, n_steps, inner_lr)
    for run in runs:
        predictor = learner.adapt(run.train_x, torch.arange(len(run.train_x)), **settings)
        with torch.no_grad():
            if one_to_one_assignment:
                pred = one_to_one(predictor.predict_proba(run.test_x).clamp_min(1e-30).log())
            else:
                pred = predictor.predict(run.test_x).cpu()
        errors.append(float((pred != run.test_y).float().mean()))
        preds.append(pred.tolist())
    return LakeResult(errors, preds)
