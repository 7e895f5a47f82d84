"""A training run killed at a random moment leaves a loadable checkpoint, and `--resume` from it
ends with exactly the weights of a run that was never interrupted (same seed, same flags)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_distributed import _fake_omniglot

from playground.data.omniglot import load_omniglot
from playground.training import continued_seed
from playground.zoo.checkpoints import export_for_inference, read_checkpoint

ITERATIONS = 120


def _train(flags: list[str], out: Path, env: dict, *more: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "playground", "train", *flags, "--out", str(out), *more]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # a real training run in a fresh processs
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    data, cache = _fake_omniglot(tmp_path / "omniglot"), tmp_path / "cache"
    load_omniglot(data, cache)
    # One thread in every run: the same arithmetic, so the weights can be compared exactly.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PLAYGROUND_CACHE": str(cache), "PYTHONPATH": str(Path.cwd())}
    # With random shifts, so their generator's state must be resumed too.
    flags = "--algorithm protonet --set hidden=8 --no-rotations --augment-shift 1 --query 2 --meta-batch 2"
    flags += " --val-every 4"
    flags = [*flags.split(), "--iterations", str(ITERATIONS), "--val-episodes", "2", "--device", "cpu"]
    flags += ["--data-dir", str(data)]

    whole = _train(flags, tmp_path / "whole", env)
    killed_dir = tmp_path / "killed"
    killed = _train(flags, killed_dir, env)
    log = killed_dir / "log.jsonl"
    deadline = time.monotonic() + 120
    # Kill it somewhere after its third checkpoint: mid-iteration, mid-validation or mid-save.
    while not (log.exists() and len(log.read_text().splitlines()) >= 3):
        assert killed.poll() is None, killed.stdout.read()
        assert time.monotonic() < deadline, "the run never wrote three checkpoints"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert whole.wait(timeout=300) == 0, whole.stdout.read()

    last = read_checkpoint(killed_dir / "last.pt")  # loadable, whatever the moment of the kill
    stopped_at = last.training["iteration"]
    assert 0 < stopped_at < ITERATIONS, stopped_at
    resumed = _train(flags, killed_dir, env, "--resume", str(killed_dir / "last.pt"))
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()

    want, got = (read_checkpoint(d / "last.pt") for d in (tmp_path / "whole", killed_dir))
    assert got.training["iteration"] == want.training["iteration"] == ITERATIONS
    assert want.state_dict.keys() == got.state_dict.keys()
    for name, value in want.state_dict.items():
        assert torch.equal(got.state_dict[name], value), name
    # The validations after the kill saw the same model as the uninterrupted run's.
    entries = [
        [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()] for d in (tmp_path / "whole", killed_dir)
    ]
    after = {e["iteration"]: e["val_acc"] for e in entries[1] if e["iteration"] > stopped_at}
    assert after and all(after[e["iteration"]] == e["val_acc"] for e in entries[0] if e["iteration"] in after)


@pytest.mark.slow  # a real training run in a fresh processs
def test_a_shipped_model_trains_on_where_its_schedule_left_off(tmp_path):
    """A shipped checkpoint has no optimizer or scheduler state: training it on resumes the cosine
    schedule at its saved iteration (as a resume from last.pt does), keeps the saved settings, and
    names the flags it did not apply."""
    data, cache = _fake_omniglot(tmp_path / "omniglot"), tmp_path / "cache"
    load_omniglot(data, cache)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PLAYGROUND_CACHE": str(cache), "PYTHONPATH": str(Path.cwd())}
    flags = "--algorithm protonet --set hidden=8 --no-rotations --query 2 --meta-batch 2 --val-episodes 2"
    flags = [*flags.split(), "--val-every", "2", "--device", "cpu", "--data-dir", str(data)]
    first = _train([*flags, "--iterations", "4"], tmp_path / "first", env)
    assert first.wait(timeout=300) == 0, first.stdout.read()
    shipped = export_for_inference(tmp_path / "first" / "last.pt", tmp_path / "shipped.pt")
    assert read_checkpoint(shipped).optimizer is None and "scheduler" not in read_checkpoint(shipped).extra

    logs = {}
    for name, source in (("from_last", tmp_path / "first" / "last.pt"), ("from_shipped", shipped)):
        # --val-every 3 and --query 5 are not the saved run's: they are named as ignored, not applied.
        more = ["--iterations", "8", "--resume", str(source), "--val-every", "3", "--query", "5"]
        run = _train(["--device", "cpu"], tmp_path / name, env, *more)
        output = run.communicate(timeout=300)[0]
        assert run.returncode == 0, output
        assert "ignored: --val-every, --query" in output, output
        assert ("keeps weights and config only" in output) == (name == "from_shipped"), output
        logs[name] = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]
    for name, log in logs.items():
        assert [e["iteration"] for e in log] == [6, 8], name  # the saved --val-every 2, from iteration 4
    # The outer rate at each validation is the one the uninterrupted schedule gives (not a restart at 4).
    assert [e["lr"] for e in logs["from_shipped"]] == [e["lr"] for e in logs["from_last"]]
    # Shipping dropped the episode stream: it restarts from a seed of its own, not the first run's
    # (which would replay the first 4 iterations' episodes); a resume from last.pt continues its stream.
    streams = {name: read_checkpoint(tmp_path / name / "last.pt").training.get("episode_streams") for name in logs}
    assert streams == {"from_last": None, "from_shipped": [[4, continued_seed(0, 4)]]}
    assert continued_seed(0, 4) not in (0, continued_seed(0, 5), continued_seed(1, 4))
    # Without --iterations a resume keeps the run's own count: a finished run stays finished.
    # --data-dir applies to a resume (the data may have moved): it is not named as ignored.
    again = _train(
        ["--data-dir", str(data)], tmp_path / "from_last", env, "--resume", str(tmp_path / "from_last" / "last.pt")
    )
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0 and "ignored" not in output, output
    assert read_checkpoint(tmp_path / "from_last" / "last.pt").training["iteration"] == 8


# Flags of the signal tests: validations at 4, 8 and 12; last.pt otherwise only on a stop (--save-every 0).
SIGNAL_FLAGS = "--algorithm protonet --set hidden=8 --query 2 --meta-batch 2 --iterations 12 --val-every 4"
SIGNAL_FLAGS += " --val-episodes 2 --save-every 0 --device cpu --malloc default --threads 1"


def _signal_in(monkeypatch, function: str, call: int, *signums: int) -> None:
    """Send ``signums`` to this process during the ``call``-th call of the training loop's ``function``."""
    from playground.training import loop

    original, calls = getattr(loop, function), []

    def wrapped(*args, **kwargs):
        calls.append(None)
        if len(calls) == call:
            for signum in signums:
                os.kill(os.getpid(), signum)
                time.sleep(0.01)  # its handler runs before the next one is sent
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, function, wrapped)


def _log(folder: Path) -> list[dict]:
    # Everything but the wall-clock seconds.
    entries = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in e.items() if k != "seconds"} for e in entries]


@pytest.mark.parametrize(
    "signum, function, call, stopped_at",
    [
        # mid-step: the step ends, then last.pt holds iteration 7
        pytest.param(signal.SIGINT, "shift_tasks", 7, 7, id="SIGINT-mid-step"),
        # mid-validation (iteration 8's): it ends, last.pt holds 8
        pytest.param(signal.SIGTERM, "evaluate_few_shot", 2, 8, id="SIGTERM-mid-validation"),
    ],
)
def test_a_signal_stops_training_with_its_work_in_last_pt_and_resume_ends_as_if_uninterrupted(
    glyphs_train, glyphs_test, tmp_path, monkeypatch, capfd, signum, function, call, stopped_at
):
    from playground.cli import main
    from playground.data.protocols import Splits

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    flags = SIGNAL_FLAGS.split()
    assert main(["train", *flags, "--out", str(tmp_path / "whole")]) == 0
    cut = tmp_path / "cut"
    with monkeypatch.context() as m:
        _signal_in(m, function, call, signum)
        assert main(["train", *flags, "--out", str(cut)]) == 128 + signum
    err = capfd.readouterr().err
    assert f"{signal.Signals(signum).name}: stopping after this iteration" in err
    assert f"interrupted: stopped at iteration {stopped_at} of 12; {cut / 'last.pt'} holds it" in err
    assert read_checkpoint(cut / "last.pt").training["iteration"] == stopped_at
    assert [e["iteration"] for e in _log(cut)] == [4, 8][: stopped_at // 4]

    assert main(["train", "--resume", str(cut / "last.pt"), "--out", str(cut), "--threads", "1"]) == 0
    want, got = (read_checkpoint(d / "last.pt") for d in (tmp_path / "whole", cut))
    assert got.training["iteration"] == want.training["iteration"] == 12
    for name, value in want.state_dict.items():
        assert torch.equal(got.state_dict[name], value), name
    # The same validations, losses and learning rates: the episodes, shifts and smoothing went on as before.
    assert _log(cut) == _log(tmp_path / "whole")


def test_a_second_ctrl_c_stops_at_once_and_claims_no_checkpoint_that_was_never_written(
    glyphs_train, glyphs_test, tmp_path, monkeypatch, capfd
):
    from playground.cli import main
    from playground.data.protocols import Splits

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    _signal_in(monkeypatch, "shift_tasks", 3, signal.SIGINT, signal.SIGINT)
    assert main(["train", *SIGNAL_FLAGS.split(), "--out", str(tmp_path)]) == 130
    err = capfd.readouterr().err
    assert "interrupted: stopped at once with 2 of 12 iterations done; no checkpoint was written yet" in err, err
    assert not (tmp_path / "last.pt").exists()
    # Signals are back as they were: Ctrl-C outside training interrupts at once.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_process_started_to_ignore_sigint_keeps_ignoring_it(glyphs_train, glyphs_test, tmp_path, monkeypatch):
    """A shell's background job starts with SIGINT ignored: training does not take it up as a stop."""
    from playground.cli import main
    from playground.data.protocols import Splits

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    _signal_in(monkeypatch, "shift_tasks", 3, signal.SIGINT)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert main(["train", *SIGNAL_FLAGS.split(), "--out", str(tmp_path)]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert read_checkpoint(tmp_path / "last.pt").training["iteration"] == 12
