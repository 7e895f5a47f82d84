"""The settings of a training run, and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playground.data.protocols import Splits
from playground.data.style_shift import BANK_VARIANTS
from playground.runtime.precision import check_precision


@dataclass
class TrainConfig:
    """Every setting of a run (`train`'s flags); a checkpoint keeps them as ``train_config``."""

    algorithm: str = "protonet"
    dataset: str = "omniglot"  # one of playground.data.datasets.DATASETS
    protocol: str = "lake"
    ways: int = 5
    shots: int = 1
    query: int = 15
    train_ways: int | None = None  # training episodes may use more ways (ProtoNet's trick)
    train_shots: int | None = None  # ... and more shots (Reptile's code trains 1-shot models on 10)
    meta_batch: int = 32
    iterations: int = 10000
    val_every: int = 500
    # last.pt every this many iterations besides validation's (0: only at validation and on a stop
    # signal), so a run killed outright (SIGKILL, a crash, the power) loses at most these.
    save_every: int = 100
    val_episodes: int = 200
    test_episodes: int = 600
    rotations: bool = True
    augment_shift: int = 0  # move each training image by up to this many pixels (playground.data.augment)
    colour_augment: bool = True  # colour datasets: random crop, flip and colour jitter (playground.data.augment)
    # Each training image is, with this probability, a style-shifted variant of its drawing
    # (playground.data.style_shift: pen, hand, paper, camera, file; lake's background alphabets only).
    augment_style: float = 0.0
    style_variants: int = BANK_VARIANTS  # shifted variants per drawing in the bank augment_style draws from
    within_alphabet: bool = False  # every training episode's classes from one alphabet, as in Lake's runs
    precision: str = "fp32"  # bf16: meta-training steps under bfloat16 autocast (playground.runtime.precision)
    seed: int = 0
    device: str = "auto"
    out: str = "runs/latest"
    data_dir: str | None = None
    learner: dict[str, Any] = field(default_factory=dict)  # algorithm hyperparameters
    init_from: str | None = None  # start from the weights of a checkpoint (same architecture)
    command: str = ""  # the command line that started the run, for the model card


def validate_config(cfg: TrainConfig, splits: Splits | None = None) -> None:
    """Reject impossible settings with a message naming the flag and the allowed range."""
    checks = [
        (cfg.ways >= 2, f"--ways must be at least 2 (got {cfg.ways})"),
        (cfg.shots >= 1, f"--shots must be at least 1 (got {cfg.shots})"),
        (cfg.query >= 1, f"--query must be at least 1 (got {cfg.query})"),
        (cfg.meta_batch >= 1, f"--meta-batch must be at least 1 (got {cfg.meta_batch})"),
        (cfg.iterations >= 1, f"--iterations must be at least 1 (got {cfg.iterations})"),
        (cfg.val_every >= 1, f"--val-every must be at least 1 (got {cfg.val_every})"),
        (cfg.save_every >= 0, f"--save-every must be 0 or more (got {cfg.save_every})"),
        (cfg.train_ways is None or cfg.train_ways >= 2, f"--train-ways must be at least 2 (got {cfg.train_ways})"),
        (cfg.train_shots is None or cfg.train_shots >= 1, f"--train-shots must be at least 1 (got {cfg.train_shots})"),
        (0 <= cfg.augment_shift <= 8, f"--augment-shift must be between 0 and 8 pixels (got {cfg.augment_shift})"),
        (
            0 <= cfg.augment_style <= 1,
            f"--augment-style must be a probability between 0 and 1 (got {cfg.augment_style})",
        ),
        (cfg.style_variants >= 1, f"--style-variants must be at least 1 (got {cfg.style_variants})"),
        (
            cfg.augment_style == 0 or cfg.protocol == "lake",
            "--augment-style needs --protocol lake: its bank is made from the background alphabets only",
        ),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)
    check_precision(cfg.precision)
    if splits is not None:
        for name, ds, ways in (
            ("train", splits.train, cfg.train_ways or cfg.ways),
            ("val", splits.val, cfg.ways),
            ("test", splits.test, cfg.ways),
        ):
            if ways > ds.num_classes:
                raise ValueError(
                    f"{ways} ways is more than the {ds.num_classes} classes of the {cfg.protocol} {name} split"
                )
        for flag, shots in (("--shots", cfg.shots), ("--train-shots", cfg.train_shots or cfg.shots)):
            if shots + cfg.query > splits.train.drawings_per_class:
                raise ValueError(
                    f"{flag} + --query = {shots + cfg.query} exceeds the "
                    f"{splits.train.drawings_per_class} drawings per character"
                )


def as_flag(setting: str) -> str:
    """The command-line flag of a setting: ``save_every`` -> ``--save-every``."""
    return "--" + setting.replace("_", "-")
