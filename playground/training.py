"""Meta-training: the loop, periodic meta-validation, best/last checkpoints, resume, model card."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from playground import distributed
from playground.algorithms import MetaLearner, create_learner, learner_class
from playground.algorithms.test_time import TestTimeSettings
from playground.augment import colour_augment_tasks, shift_tasks
from playground.card import Evaluation, ModelCard, Result, TrainingRecord
from playground.checkpoints import (
    Checkpoint,
    learner_from_checkpoint,
    read_card,
    read_checkpoint,
    save_checkpoint,
    write_card,
)
from playground.data.datasets import dataset as dataset_info
from playground.data.datasets import load_dataset_splits
from playground.data.protocols import Splits, load_splits
from playground.data.style_shift import BANK_VARIANTS, style_variants
from playground.device import resolve_device
from playground.episodes import StyleTaskSampler, TaskSampler
from playground.evaluation import evaluate_few_shot
from playground.precision import check_precision, training_autocast


@dataclass
class TrainConfig:
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
    augment_shift: int = 0  # move each training image by up to this many pixels (playground.augment)
    colour_augment: bool = True  # colour datasets: random crop, flip and colour jitter (playground.augment)
    # Each training image is, with this probability, a style-shifted variant of its drawing
    # (playground.data.style_shift: pen, hand, paper, camera, file; lake's background alphabets only).
    augment_style: float = 0.0
    style_variants: int = BANK_VARIANTS  # shifted variants per drawing in the bank augment_style draws from
    within_alphabet: bool = False  # every training episode's classes from one alphabet, as in Lake's runs
    precision: str = "fp32"  # bf16: meta-training steps under bfloat16 autocast (playground.precision)
    seed: int = 0
    device: str = "auto"
    out: str = "runs/latest"
    data_dir: str | None = None
    learner: dict[str, Any] = field(default_factory=dict)  # algorithm hyperparameters
    init_from: str | None = None  # start from the weights of a checkpoint (same architecture)
    command: str = ""  # the command line that started the run, for the model card


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"


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


def cosine_schedule(optimizer: torch.optim.Optimizer, iterations: int, floor: float = 0.05):
    """Cosine decay from the outer learning rate to ``floor`` times it over ``iterations``.

    Closed form (LambdaLR), so resuming with more ``--iterations`` stretches the remaining
    decay instead of restarting it.
    """

    def factor(it: int) -> float:
        progress = min(it, iterations) / iterations
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _Log:
    def __init__(self, path: Path):
        self.path = path

    def write(self, **record: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def progress_bar(total: int, initial: int = 0, desc: str | None = None):
    """A tqdm bar on stderr: live on a terminal, a line every 15 s in a log, silent on ranks other than 0."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 15,
        disable=not distributed.is_main(),
    )


# The settings a resume takes from its caller (as --flags on the command line); every other one is the saved run's.
RESUME_SETTINGS = ("iterations", "device", "out", "data_dir", "save_every")


class TrainingInterrupted(KeyboardInterrupt):
    """A signal stopped training; the message says which checkpoint holds the work and how to go on."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class _StopSignals:
    """While active, SIGINT and SIGTERM ask training to stop after the iteration in progress, once
    last.pt holds it, instead of killing it mid-step with nothing saved. A second SIGINT (Ctrl-C
    pressed again) stops at once. Signals reach Python's handlers only in the main thread: elsewhere
    (training started from another thread) nothing changes."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                # A signal the process was started to ignore (as a shell's background job ignores SIGINT) stays so.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        # Only a second Ctrl-C stops at once: torchrun's agent follows a Ctrl-C with its own SIGTERM to
        # every worker, which must not cut short the save the first signal asked for.
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            if distributed.is_main():
                # os.write, not print: the handler may run in the middle of the progress bar's own write.
                os.write(
                    2,
                    f"\n{signal.Signals(signum).name}: stopping after this iteration, once last.pt holds it "
                    "(Ctrl-C again stops at once, losing the iterations since the last checkpoint)\n".encode(),
                )


def as_flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


def continued_seed(seed: int, iteration: int) -> int:
    """The seed of the episode stream for a shipped model trained on from ``iteration``: a hash of
    the run's seed and the iteration, so the first run's stream is not replayed."""
    digest = hashlib.sha256(f"playground episodes {seed} {iteration}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def train(
    cfg: TrainConfig,
    resume: str | Path | None = None,
    echo: Callable[..., None] = print,
    ignored: Sequence[str] = (),
    on_start: Callable[[], None] | None = None,
    on_iteration: Callable[[MetaLearner, int, float, float], None] | None = None,
) -> Path | None:
    """Meta-train; returns the path of the best checkpoint (by meta-validation accuracy), or None when a
    run resumed into a new folder never beat the best it resumed with (that one stays where it was written).

    A resume keeps the saved run's config except ``RESUME_SETTINGS`` (``data_dir`` only when
    given); ``ignored`` names the caller's flags that it therefore did not apply. ``on_start`` is
    called once every setting has been checked and the data loaded, as the iterations begin (rank 0).
    ``on_iteration(learner, iteration, loss, accuracy)`` is called after each iteration with the smoothed
    loss and accuracy (rank 0); whatever it raises stops training and reaches the caller (a live job's stop).
    Under torchrun every process runs this: each takes its share of every meta-batch
    (`playground.distributed`), and only rank 0 validates, prints and writes files.
    SIGINT or SIGTERM stops it after the iteration in progress, with that iteration in last.pt,
    raising `TrainingInterrupted`; last.pt is also written every ``cfg.save_every`` iterations.
    """
    device = distributed.setup(resolve_device(cfg.device))
    main = distributed.is_main()
    out = Path(cfg.out)
    state: dict[str, Any] = {"iteration": 0, "best_val": -1.0, "train_seconds": 0.0}
    ckpt = None
    if resume is not None:
        ckpt = read_checkpoint(resume)
        saved = ckpt.extra.get("train_config")
        if not isinstance(saved, dict):
            raise ValueError(f"{resume} holds no training state to resume from")
        iterations = cfg.iterations
        # The card's command is the chain that made these weights: the first run, then each resume.
        command = " && ".join(c for c in (training_command(ckpt, resume), cfg.command) if c)
        cfg = TrainConfig(
            **{
                **saved,
                **{setting: getattr(cfg, setting) for setting in RESUME_SETTINGS},
                "iterations": max(iterations, saved["iterations"]),
                "data_dir": cfg.data_dir or saved.get("data_dir"),  # the data may be elsewhere on this machine
                "command": command,
            }
        )
        state.update(ckpt.training)
    validate_config(cfg)
    if learner_class(cfg.algorithm).not_trainable:
        raise ValueError(f"--algorithm {cfg.algorithm}: {learner_class(cfg.algorithm).not_trainable}")
    info = dataset_info(cfg.dataset)
    channels, size, _ = info.image_shape
    if (channels, size) != (1, 28) and learner_class(cfg.algorithm).glyphs_only:
        raise ValueError(
            f"--algorithm {cfg.algorithm} cannot run on {info.title}: {learner_class(cfg.algorithm).glyphs_only}"
        )
    torch.manual_seed(cfg.seed)
    if info.read is None:  # Omniglot, through its own protocols
        splits = load_splits(cfg.protocol, cfg.data_dir, rotations=cfg.rotations)
    else:
        splits = load_dataset_splits(cfg.dataset, cfg.protocol, cfg.data_dir, rotations=cfg.rotations)
    if splits.train.num_classes == 0:
        raise ValueError(f"--protocol {cfg.protocol} has no meta-training classes: it is for evaluation only")
    validate_config(cfg, splits)
    distributed.check(cfg.algorithm, cfg.meta_batch)
    train_ways = cfg.train_ways or cfg.ways
    # The network is sized for the dataset's images (a learner's own options cannot change them).
    learner_options = {**cfg.learner, "n_way": train_ways, "in_channels": channels, "image_size": size}
    accepted = learner_class(cfg.algorithm).hyperparameters()
    learner_options = {k: v for k, v in learner_options.items() if k in accepted}
    learner: MetaLearner = (
        learner_from_checkpoint(ckpt, device) if ckpt else create_learner(cfg.algorithm, **learner_options).to(device)
    )
    # A resumed run validates as it did before the stop, whatever card may lie beside its checkpoint.
    learner.test_time = TestTimeSettings()
    if ckpt is None and cfg.init_from:
        # The card's budget then counts the base model's training too, not only this run's.
        state["base"] = init_weights(learner, cfg.init_from)
    train_set, val_set = splits.train.to(device), splits.val.to(device)
    if ckpt is None:
        # Before the optimizer is made: the hook may add parameters (a classifier over all classes).
        # A resumed learner got whatever it set up from its checkpoint.
        learner.prepare_training(train_set)
    distributed.prepare(learner)
    seed = cfg.seed
    if ckpt is not None and "sampler" not in ckpt.extra:
        # Shipping drops the streams' states; restarting them from the seed would replay the
        # episodes (and shifts) the model was first trained on, so they restart elsewhere.
        seed = continued_seed(cfg.seed, state["iteration"])
        torch.manual_seed(seed)
        state["episode_streams"] = [*state.get("episode_streams", []), [state["iteration"], seed]]
    train_shots = cfg.train_shots or cfg.shots
    if cfg.augment_style > 0:
        if main:
            echo(f"style bank: {cfg.style_variants} shifted variants per training drawing (cached after the first run)")
        bank = style_variants(
            train_set.names, cfg.style_variants, cfg.seed, cfg.data_dir, workers=torch.get_num_threads()
        )
        sampler = StyleTaskSampler(
            train_set,
            bank,
            cfg.augment_style,
            train_ways,
            train_shots,
            cfg.query,
            seed=seed,
            within_alphabet=cfg.within_alphabet,
        )
    else:
        sampler = TaskSampler(
            train_set, train_ways, train_shots, cfg.query, seed=seed, within_alphabet=cfg.within_alphabet
        )
    # Its own stream, so the episodes are the same with and without augmentation.
    shifts = torch.Generator().manual_seed(seed + 2)
    scheduler = cosine_schedule(learner.optimizer, cfg.iterations)
    if ckpt is not None:
        if ckpt.optimizer is not None:
            learner.optimizer.load_state_dict(ckpt.optimizer)
        elif main:
            echo(
                f"{resume} keeps weights and config only (a shipped model): the optimizer starts afresh "
                f"at iteration {state['iteration']}, and the episodes come from a new stream"
            )
        if "scheduler" in ckpt.extra:
            scheduler.load_state_dict(ckpt.extra["scheduler"])
        else:
            # A shipped checkpoint keeps only the weights and the run's config: the closed-form
            # schedule is put back at the saved iteration, so training on continues its decay.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
                for _ in range(state["iteration"]):
                    scheduler.step()
        if "sampler" in ckpt.extra:
            sampler.load_state_dict(ckpt.extra["sampler"])
            if "torch_rng" in ckpt.extra:
                torch.set_rng_state(ckpt.extra["torch_rng"])
            if "shift_rng" in ckpt.extra:  # runs saved before shifts existed have none
                shifts.set_state(ckpt.extra["shift_rng"])
    if main and resume is not None and ignored:
        echo(
            f"--resume continues {resume} with its saved settings; ignored: {', '.join(ignored)} "
            f"(a resume takes only {', '.join(map(as_flag, RESUME_SETTINGS))})"
        )
    processes = f" x {distributed.world()} processes" if distributed.world() > 1 else ""
    state.setdefault("hardware", hardware_description(device) + processes)
    log = _Log(out / "log.jsonl")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        autocast = "; bfloat16 autocast" if cfg.precision == "bf16" else ""
        echo(f"{cfg.algorithm} on {splits.describe()}; device {device}{processes}{autocast}; output {out}")
        if on_start is not None:
            on_start()

    def save(path: Path) -> None:
        save_checkpoint(
            path,
            learner,
            training=dict(state),
            optimizer=learner.optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            sampler=sampler.state_dict(),
            torch_rng=torch.get_rng_state(),
            shift_rng=shifts.get_state(),
            train_config=asdict(cfg),
        )

    bar = progress_bar(cfg.iterations, state["iteration"])
    start = time.perf_counter() - state["train_seconds"]
    # The smoothed loss and accuracy of the log go on from a resume as they would have without a stop.
    loss_avg, acc_avg = state.get("loss_avg"), state.get("acc_avg")
    last_saved = None  # the iteration last.pt holds, once this run has written it

    def save_last() -> None:
        nonlocal last_saved
        state["train_seconds"] = time.perf_counter() - start
        save(out / "last.pt")
        last_saved = state["iteration"]

    try:
        with _StopSignals() as stop:
            while state["iteration"] < cfg.iterations:
                # Every rank samples the whole batch (the same stream as one process) and trains on its share.
                batch = shift_tasks(sampler.sample_batch(cfg.meta_batch), cfg.augment_shift, shifts)
                if info.colour and cfg.colour_augment:
                    batch = colour_augment_tasks(batch, info.normalization, shifts)
                with training_autocast(device, cfg.precision):
                    stats = distributed.meta_train_step(learner, batch)
                scheduler.step()
                state["iteration"] += 1
                loss_avg = stats.loss if loss_avg is None else 0.95 * loss_avg + 0.05 * stats.loss
                acc_avg = stats.accuracy if acc_avg is None else 0.95 * acc_avg + 0.05 * stats.accuracy
                state["loss_avg"], state["acc_avg"] = loss_avg, acc_avg
                bar.update(1)
                bar.set_postfix(loss=f"{loss_avg:.3f}", acc=f"{100 * acc_avg:.1f}%", refresh=False)
                if not torch.isfinite(torch.tensor(stats.loss)):
                    raise FloatingPointError(
                        f"meta-training diverged at iteration {state['iteration']} (loss {stats.loss}); "
                        "lower --outer-lr or --inner-lr. The last good checkpoint is in "
                        f"{out / 'last.pt'}"
                    )
                it = state["iteration"]
                if main and on_iteration is not None:
                    on_iteration(learner, it, loss_avg, acc_avg)
                if main and (it % cfg.val_every == 0 or it == cfg.iterations):
                    state["train_seconds"] = time.perf_counter() - start
                    val = evaluate_few_shot(
                        learner, val_set, cfg.ways, cfg.shots, cfg.query, cfg.val_episodes, seed=cfg.seed + 1
                    )
                    improved = val.mean > state["best_val"]
                    if improved:
                        state["best_val"] = val.mean
                        state["best_iteration"] = it
                    log.write(
                        iteration=it,
                        loss=loss_avg,
                        train_acc=acc_avg,
                        val_acc=val.mean,
                        val_ci95=val.ci95,
                        seconds=state["train_seconds"],
                        lr=scheduler.get_last_lr()[0],
                    )
                    bar.write(
                        f"iter {it}: loss {loss_avg:.3f} train {100 * acc_avg:.1f}% | "
                        f"val {val.format()}{' (best)' if improved else ''}"
                    )
                    if improved:
                        save(out / "best.pt")
                    save_last()
                # Every rank stops at the same iteration, whichever of them the signal reached first.
                stopping = distributed.any_rank(stop.signum is not None) and it < cfg.iterations
                due = cfg.save_every and it % cfg.save_every == 0
                if main and last_saved != it and (stopping or due):
                    save_last()  # at an iteration's end: weights, optimizer, RNG and sampler agree
                if stopping:
                    raise TrainingInterrupted(
                        f"stopped at iteration {it} of {cfg.iterations}; {out / 'last.pt'} holds it: "
                        f"continue with --resume {out / 'last.pt'}",
                        stop.signum or signal.SIGINT,
                    )
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt as exc:
        # Stopped at once: say what the files hold, never more.
        if last_saved is not None:
            held = f"{out / 'last.pt'} holds iteration {last_saved}: continue with --resume {out / 'last.pt'}"
        elif resume is not None:
            held = f"this run wrote no checkpoint; {resume} still holds iteration {ckpt.training.get('iteration', 0)}"
        else:
            every = f" every {cfg.save_every} iterations," if cfg.save_every else ""
            held = f"no checkpoint was written yet (last.pt is written{every} at each validation and on a stop)"
        done = f"{state['iteration']} of {cfg.iterations} iterations done"
        raise TrainingInterrupted(f"stopped at once with {done}; {held}") from exc
    finally:
        bar.close()
    best = out / "best.pt"
    if best.exists():
        return best
    if main:
        # The best is usually the resumed run's own best.pt beside the last.pt resumed from.
        earlier = Path(resume).with_name("best.pt") if resume is not None else None
        where = earlier if earlier is not None and earlier.exists() else f"the best.pt of the run {resume} came from"
        echo(
            f"no validation of this run beat the best it resumed with ({100 * state['best_val']:.2f}% at "
            f"iteration {state.get('best_iteration')}): that checkpoint is {where}, "
            f"and {out / 'last.pt'} is where this run ended"
        )
    return None


def init_weights(learner: MetaLearner, checkpoint: str | Path) -> dict[str, Any]:
    """Copy the weights of ``checkpoint`` into ``learner`` (e.g. fine-tune ProtoNet as soft k-means).

    Returns the base's budget (its iterations and seconds, its own base's included), its command,
    and its own base's record under ``base`` when it was itself fine-tuned.
    """
    source = read_checkpoint(checkpoint)
    own = learner.state_dict()
    missing = sorted(set(own) - set(source.state_dict))
    wrong = sorted(k for k in own if k in source.state_dict and source.state_dict[k].shape != own[k].shape)
    if missing or wrong:
        raise ValueError(
            f"--init-from {checkpoint}: its {source.algorithm} weights do not fit {learner.name} "
            f"(missing {missing[:5]}, different shape {wrong[:5]})"
        )
    learner.load_state_dict({k: source.state_dict[k] for k in own})
    earlier = source.training.get("base", {})
    return {
        "checkpoint": str(checkpoint),
        "algorithm": source.algorithm,
        # The classes it saw: a split that holds them is no test of the fine-tuned model either.
        "protocol": source.protocol,
        "iterations": source.training.get("iteration", 0) + earlier.get("iterations", 0),
        # Not rounded: a fast machine trains a tiny base in well under 0.05 s, and rounding is the report's job.
        "seconds": source.training.get("train_seconds", 0.0) + earlier.get("seconds", 0.0),
        # How the base was made, so the card stays reproducible when the base file is gone or replaced.
        "command": training_command(source, checkpoint),
        # The base's own base, and so on down the chain: every command that made the weights.
        **({"base": earlier} if earlier else {}),
    }


def training_command(source: Checkpoint, checkpoint: str | Path) -> str:
    """The command that trained ``source``: its own record, else its model card's."""
    command = source.extra.get("train_config", {}).get("command", "")
    if not command:
        # A checkpoint saved before runs recorded their command keeps it in its model card only.
        card = read_card(checkpoint)
        command = (card.training.command if card else None) or ""
    return command


def make_card(checkpoint_path: Path, results: list[Result], device: torch.device, note: str = "") -> ModelCard:
    """A model card for a trained checkpoint: config, protocol, budget, hardware, results."""
    ckpt = read_checkpoint(checkpoint_path)
    tc = ckpt.extra.get("train_config", {})
    return ModelCard(
        algorithm=ckpt.algorithm,
        config=ckpt.config,
        dataset=tc.get("dataset", "omniglot"),
        protocol=tc.get("protocol"),
        training=TrainingRecord(
            iterations=ckpt.training.get("iteration"),
            best_iteration=ckpt.training.get("best_iteration"),
            best_val_accuracy=ckpt.training.get("best_val"),
            seconds=round(ckpt.training.get("train_seconds", 0.0), 1),
            base=ckpt.training.get("base"),
            train_config=tc,
            hardware=ckpt.training.get("hardware", ""),
            command=tc.get("command", ""),
        ),
        evaluation=Evaluation(
            split="test (meta-test classes of the protocol)",
            device=hardware_description(device),
            results=tuple(results),
        ),
        torch=torch.__version__,
        note=note,
    )


__all__ = [
    "TrainConfig",
    "TrainingInterrupted",
    "train",
    "validate_config",
    "make_card",
    "write_card",
    "hardware_description",
]
