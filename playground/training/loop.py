"""Meta-training: `train` and its loop, periodic meta-validation, the best and last checkpoints."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from playground.algorithms import MetaLearner
from playground.data.augment import colour_augment_tasks, shift_tasks
from playground.data.protocols import ClassDataset
from playground.evaluation.few_shot import evaluate_few_shot
from playground.runtime import distributed
from playground.runtime.device import resolve_device
from playground.runtime.precision import training_autocast
from playground.training.config import TrainConfig, as_flag
from playground.training.model_card import hardware_description
from playground.training.prepare import load_data, start_run
from playground.training.resume import RESUME_SETTINGS, restore, resumed_config
from playground.training.run_state import RunState
from playground.training.signals import StopSignals, TrainingInterrupted
from playground.zoo.checkpoints import read_checkpoint, save_checkpoint


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
    (`playground.runtime.distributed`), and only rank 0 validates, prints and writes files.
    SIGINT or SIGTERM stops it after the iteration in progress, with that iteration in last.pt,
    raising `TrainingInterrupted`; last.pt is also written every ``cfg.save_every`` iterations.
    """
    device = distributed.setup(resolve_device(cfg.device))
    main = distributed.is_main()
    resumed = read_checkpoint(resume) if resume is not None else None
    if resumed is not None:
        cfg = resumed_config(cfg, resumed, resume)
    info, splits = load_data(cfg)
    train_set, val_set = splits.train.to(device), splits.val.to(device)
    run = start_run(cfg, info, train_set, device, resumed, echo)
    if resumed is not None:
        restore(run, resumed, cfg, resume, echo)
        if main and ignored:
            echo(
                f"--resume continues {resume} with its saved settings; ignored: {', '.join(ignored)} "
                f"(a resume takes only {', '.join(map(as_flag, RESUME_SETTINGS))})"
            )
    resumed_at = run.iteration
    processes = f" x {distributed.world()} processes" if distributed.world() > 1 else ""
    if run.hardware is None:  # a resumed run keeps the machine it was first trained on
        run.hardware = hardware_description(device) + processes
    out = Path(cfg.out)
    log = _Log(out / "log.jsonl")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        autocast = "; bfloat16 autocast" if cfg.precision == "bf16" else ""
        echo(f"{cfg.algorithm} on {splits.describe()}; device {device}{processes}{autocast}; output {out}")
        if on_start is not None:
            on_start()

    bar = progress_bar(cfg.iterations, run.iteration)
    start = time.perf_counter() - run.train_seconds
    last_saved = None  # the iteration last.pt holds, once this run has written it

    def save_last() -> None:
        nonlocal last_saved
        run.train_seconds = time.perf_counter() - start
        _save(out / "last.pt", run, cfg)
        last_saved = run.iteration

    try:
        with StopSignals() as stop:
            while run.iteration < cfg.iterations:
                # Every rank samples the whole batch (the same stream as one process) and trains on its share.
                batch = shift_tasks(run.sampler.sample_batch(cfg.meta_batch), cfg.augment_shift, run.shifts)
                if info.colour and cfg.colour_augment:
                    batch = colour_augment_tasks(batch, info.normalization, run.shifts)
                with training_autocast(device, cfg.precision):
                    stats = distributed.meta_train_step(run.learner, batch)
                run.scheduler.step()
                run.advance(stats.loss, stats.accuracy)
                it = run.iteration
                bar.update(1)
                bar.set_postfix(loss=f"{run.loss_avg:.3f}", acc=f"{100 * run.acc_avg:.1f}%", refresh=False)
                if not torch.isfinite(torch.tensor(stats.loss)):
                    raise FloatingPointError(
                        f"meta-training diverged at iteration {it} (loss {stats.loss}); lower --outer-lr or "
                        f"--inner-lr. The last good checkpoint is in {out / 'last.pt'}"
                    )
                if main and on_iteration is not None:
                    on_iteration(run.learner, it, run.loss_avg, run.acc_avg)
                if main and (it % cfg.val_every == 0 or it == cfg.iterations):
                    run.train_seconds = time.perf_counter() - start
                    _validate(run, cfg, val_set, log, bar)
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
        held = _what_is_held(cfg, last_saved, resume, resumed_at)
        done = f"{run.iteration} of {cfg.iterations} iterations done"
        raise TrainingInterrupted(f"stopped at once with {done}; {held}") from exc
    finally:
        bar.close()
    return _best_checkpoint(out, run, resume, echo)


def _validate(run: RunState, cfg: TrainConfig, val_set: ClassDataset, log: _Log, bar: Any) -> None:
    """Meta-validate; log it, and keep the learner as best.pt when it beats the best so far."""
    it = run.iteration
    val = evaluate_few_shot(run.learner, val_set, cfg.ways, cfg.shots, cfg.query, cfg.val_episodes, seed=cfg.seed + 1)
    improved = val.mean > run.best_val
    if improved:
        run.best_val, run.best_iteration = val.mean, it
    log.write(
        iteration=it,
        loss=run.loss_avg,
        train_acc=run.acc_avg,
        val_acc=val.mean,
        val_ci95=val.ci95,
        seconds=run.train_seconds,
        lr=run.scheduler.get_last_lr()[0],
    )
    bar.write(
        f"iter {it}: loss {run.loss_avg:.3f} train {100 * run.acc_avg:.1f}% | "
        f"val {val.format()}{' (best)' if improved else ''}"
    )
    if improved:
        _save(Path(cfg.out) / "best.pt", run, cfg)


def _save(path: Path, run: RunState, cfg: TrainConfig) -> None:
    save_checkpoint(path, run.learner, **run.state_dict(), train_config=asdict(cfg))


def _what_is_held(cfg: TrainConfig, last_saved: int | None, resume: str | Path | None, resumed_at: int) -> str:
    """For a run stopped at once: what the files hold, never more."""
    out = Path(cfg.out)
    if last_saved is not None:
        return f"{out / 'last.pt'} holds iteration {last_saved}: continue with --resume {out / 'last.pt'}"
    if resume is not None:
        return f"this run wrote no checkpoint; {resume} still holds iteration {resumed_at}"
    every = f" every {cfg.save_every} iterations," if cfg.save_every else ""
    return f"no checkpoint was written yet (last.pt is written{every} at each validation and on a stop)"


def _best_checkpoint(out: Path, run: RunState, resume: str | Path | None, echo: Callable[..., None]) -> Path | None:
    """This run's best.pt; else None, having said where the best it resumed with is."""
    best = out / "best.pt"
    if best.exists():
        return best
    if distributed.is_main():
        # The best is usually the resumed run's own best.pt beside the last.pt resumed from.
        earlier = Path(resume).with_name("best.pt") if resume is not None else None
        where = earlier if earlier is not None and earlier.exists() else f"the best.pt of the run {resume} came from"
        echo(
            f"no validation of this run beat the best it resumed with ({100 * run.best_val:.2f}% at "
            f"iteration {run.best_iteration}): that checkpoint is {where}, "
            f"and {out / 'last.pt'} is where this run ended"
        )
    return None


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
