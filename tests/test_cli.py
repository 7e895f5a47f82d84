"""The CLI: clear errors for bad flags, and a real (tiny) train -> resume -> evaluate on Omniglot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from playground.cli import main
from playground.runtime.allocator import is_glibc
from playground.zoo.checkpoints import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "playground", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--shots", "0"], "--shots must be at least 1"),
        (["train", "--ways", "abc"], "--ways must be a whole number"),
        (["train", "--inner-lr", "-1"], "--inner-lr must be a positive"),
        (["train", "--algorithm", "nope"], "invalid choice: 'nope'"),
        (["train", "--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
        (["evaluate", "x.pt", "--episodes", "0"], "--episodes must be at least 1"),
    ],
)
def test_bad_flags_are_refused_with_a_clear_message(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_flag_that_does_not_apply_to_the_algorithm(capsys):
    assert main(["train", "--algorithm", "protonet", "--inner-lr", "0.1"]) == 2
    assert "--inner-lr does not apply to --algorithm protonet" in capsys.readouterr().err


def test_evaluate_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"hello")
    assert main(["evaluate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


@pytest.mark.omniglot
def test_more_ways_than_classes_is_refused(omniglot, capsys):
    assert main(["train", "--ways", "700", "--iterations", "1"]) == 2
    assert "more than the" in capsys.readouterr().err


@pytest.mark.slow  # real training runs, each command in a fresh process
@pytest.mark.omniglot
def test_train_resume_evaluate_end_to_end(omniglot, tmp_path):
    out = tmp_path / "run"
    common = [
        "--algorithm",
        "protonet",
        "--ways",
        "5",
        "--query",
        "2",
        "--meta-batch",
        "2",
        "--val-every",
        "2",
        "--val-episodes",
        "5",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    r = run_cli("train", *common, "--iterations", "2")
    assert r.returncode == 0, r.stderr
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    # By default glibc's malloc keeps freed memory for the next step (playground/runtime/allocator.py).
    assert ("malloc: freed memory is kept" in r.stderr) == is_glibc()
    r = run_cli("train", *common, "--iterations", "4", "--resume", str(out / "last.pt"), "--malloc", "default")
    assert r.returncode == 0, r.stderr
    assert "--malloc" not in r.stderr  # neither kept nor named as a setting the resume ignores
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in log] == [2, 4]  # resumed at 2, not from scratch
    # The resumed weights record both commands that made them: the first run, then the resume.
    first, then = read_checkpoint(out / "last.pt").extra["train_config"]["command"].split(" && ")
    assert "--iterations 2" in first and "--resume" not in first
    assert "--iterations 4 --resume" in then
    r = run_cli("evaluate", str(out / "best.pt"), "--episodes", "10", "--ways", "5", "20", "--card")
    assert r.returncode == 0, r.stderr
    assert "5-way 1-shot, 10 episodes:" in r.stdout and "±" in r.stdout
    # Progress goes to stderr as it runs (a long setting is half an hour), one bar per setting.
    assert "5-way 1-shot: 100%" in r.stderr and "20-way 1-shot: 100%" in r.stderr and "10/10" in r.stderr
    card = json.loads((out / "best.json").read_text())
    assert {(x["n_way"], x["k_shot"]) for x in card["evaluation"]["results"]} == {(5, 1), (20, 1)}
    # The card says how the model was made: the command that trained it, every flag included.
    assert card["training"]["command"].startswith("python -m playground train --algorithm protonet")
    assert "--iterations 2" in card["training"]["command"]  # the run that made best.pt (iteration 2)
    r = run_cli("lake-runs", str(out / "best.pt"), "--malloc", "default")
    assert r.returncode == 0, r.stderr
    assert "malloc" not in r.stderr
    assert "people" in r.stdout and "4.5% error" in r.stdout
    r = run_cli("report", "--dir", str(out))
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("| `best`"))
    assert row.count("±") == 2  # 5-way and 20-way 1-shot were measured; 5-shot were not
    r = run_cli("ship", str(out / "best.pt"), str(tmp_path / "shipped.pt"), "--note", "a test model")
    assert r.returncode == 0, r.stderr
    assert "its model card" in r.stdout
    shipped = json.loads((tmp_path / "shipped.json").read_text())
    assert shipped["note"] == "a test model" and shipped["evaluation"] == card["evaluation"]


@pytest.mark.slow  # real training runs, each command in a fresh process
@pytest.mark.omniglot
def test_calibrate_steps_writes_the_best_candidate(omniglot, tmp_path):
    out = tmp_path / "maml"
    r = run_cli(
        "train",
        "--algorithm",
        "maml",
        "--query",
        "1",
        "--meta-batch",
        "2",
        "--iterations",
        "1",
        "--val-episodes",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    before = (out / "best.pt").read_bytes()
    args = ["--candidates", "0", "2", "--episodes", "4", "--device", "cpu"]
    r = run_cli("calibrate-steps", str(out / "best.pt"), *args, "--ways", "3", "--no-write")
    assert r.returncode == 0, r.stderr
    assert "best for 3-way 1-shot:" in r.stdout and "(not written)" in r.stdout
    assert "2 steps: 100%" in r.stderr and "4/4" in r.stderr  # a bar per candidate
    assert (out / "best.pt").read_bytes() == before
    # Evaluated with other steps than its own, the card records them and the report names them.
    r = run_cli("evaluate", str(out / "best.pt"), "--ways", "3", "--episodes", "2", "--inner-steps", "4", "--card")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "best.json").read_text())["evaluation"]["results"][0]["inner_steps"] == 4
    r = run_cli("calibrate-steps", str(out / "best.pt"), *args)
    assert r.returncode == 0, r.stderr
    assert "0 steps:" in r.stdout and "2 steps:" in r.stdout
    from playground.zoo.checkpoints import read_checkpoint

    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt.config["test_inner_steps"] in (0, 2)
    assert set(ckpt.training["calibrated_test_inner_steps"]) == {"0", "2"}
    r = run_cli("calibrate-steps", str(out / "best.pt").replace("maml", "nothing"))
    assert r.returncode == 2 and "no checkpoint" in r.stderr
    # Step sizes too: a grid, printed, never written (a checkpoint keeps no test-time step size).
    before = (out / "best.pt").read_bytes()
    r = run_cli("calibrate-steps", str(out / "best.pt"), *args, "--inner-lrs", "0.1", "0.3", "--no-write")
    assert r.returncode == 0, r.stderr
    assert all(f"{s} steps of {lr}:" in r.stdout for s in (0, 2) for lr in (0.1, 0.3)), r.stdout
    assert "(evaluate --inner-steps " in r.stdout and "(not written)" in r.stdout
    r = run_cli("calibrate-steps", str(out / "best.pt"), *args, "--inner-lrs", "0.1")
    assert r.returncode == 2 and "--inner-lrs needs --no-write" in r.stderr
    assert (out / "best.pt").read_bytes() == before
    r = run_cli("evaluate", str(out / "best.pt"), "--ways", "3", "--episodes", "2", "--inner-lr", "0.05", "--card")
    assert r.returncode == 0, r.stderr
    result = json.loads((out / "best.json").read_text())["evaluation"]["results"][0]
    # the steps are those of the card's earlier figure for this task size: the card says what was used
    assert result["inner_lr"] == 0.05 and result["inner_steps"] == 4
    assert (
        result["command"].startswith("python -m playground evaluate ")
        and "--inner-lr 0.05 --card" in (result["command"])
    )


def test_evaluate_refuses_a_step_size_for_a_learner_without_gradient_steps(tmp_path, capsys):
    from playground.algorithms import create_learner
    from playground.zoo.checkpoints import save_checkpoint

    path = save_checkpoint(tmp_path / "p.pt", create_learner("protonet"), train_config={"protocol": "lake"})
    assert main(["evaluate", str(path), "--inner-lr", "0.1"]) == 2
    assert "--inner-lr: protonet has no inner learning rate" in capsys.readouterr().err
    # Steps too: the card would name "(10 steps)" beside a figure no step made.
    assert main(["evaluate", str(path), "--inner-steps", "10", "--card"]) == 2
    assert "--inner-steps: protonet has no inner steps" in capsys.readouterr().err
    assert main(["lake-runs", str(path), "--inner-steps", "10"]) == 2
    assert "--inner-steps: " in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_calibrate_steps_asks_the_learner_what_it_adapts_with(tmp_path, capsys):
    """Settings the learner would ignore are refused before any data is read; what it cannot keep, unwritten."""
    from playground.algorithms import create_learner
    from playground.zoo.checkpoints import save_checkpoint

    lake = {"protocol": "lake"}
    # The pretrained embedding's centroid head keeps test_inner_steps in its config but never steps.
    centroid = save_checkpoint(tmp_path / "c.pt", create_learner("pretrained", head="centroid"), train_config=lake)
    assert main(["calibrate-steps", str(centroid), "--candidates", "0", "10"]) == 2
    assert "(pretrained) has no inner loop to calibrate" in capsys.readouterr().err
    linear = save_checkpoint(tmp_path / "l.pt", create_learner("pretrained", head="linear"), train_config=lake)
    missing = tmp_path / "no-data"
    assert main(["calibrate-steps", str(linear), "--candidates", "0", "10", "--data-dir", str(missing)]) == 2
    assert "Omniglot was not found" in capsys.readouterr().err  # accepted: it got as far as the data
    # An ensemble steps when a member does, but keeps no steps of its own to write.
    members = [{"algorithm": "protonet", "config": {"hidden": 8}}, {"algorithm": "maml", "config": {"hidden": 8}}]
    ensemble = save_checkpoint(tmp_path / "e.pt", create_learner("ensemble", members=members), train_config=lake)
    before = ensemble.read_bytes()
    assert main(["calibrate-steps", str(ensemble), "--candidates", "1", "2"]) == 2
    assert "keeps no test-time steps of its own to write: use --no-write" in capsys.readouterr().err
    assert ensemble.read_bytes() == before
    protonets = [{"algorithm": "protonet", "config": {"hidden": 8}}] * 2
    pair = save_checkpoint(tmp_path / "pp.pt", create_learner("ensemble", members=protonets), train_config=lake)
    assert main(["calibrate-steps", str(pair), "--candidates", "1", "2", "--no-write"]) == 2
    assert "(ensemble) has no inner loop" in capsys.readouterr().err


def test_set_passes_any_hyperparameter_and_refuses_unknown_ones(capsys):
    import argparse

    from playground.cli.train import learner_options

    args = argparse.Namespace(algorithm="maml", set=["inner-steps=3", "head=per_class", "first_order=true"])
    assert learner_options(args) == {"inner_steps": 3, "head": "per_class", "first_order": True}
    assert main(["train", "--algorithm", "protonet", "--set", "bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "--set bogus does not apply to --algorithm protonet" in err and "metric" in err


@pytest.mark.slow  # real training runs, each command in a fresh process
@pytest.mark.omniglot
def test_init_from_starts_a_compatible_learner_from_a_checkpoint(omniglot, tmp_path):
    from playground.zoo.checkpoints import read_checkpoint

    source = tmp_path / "proto"
    flags = ["--ways", "5", "--query", "2", "--meta-batch", "1", "--val-episodes", "5", "--device", "cpu"]
    assert (
        run_cli("train", "--algorithm", "protonet", *flags, "--iterations", "3", "--out", str(source)).returncode == 0
    )
    proto = read_checkpoint(source / "last.pt").state_dict
    # Soft k-means has ProtoNet's weights: it starts exactly from them (one step at a tiny lr moves them little).
    out = tmp_path / "softkm"
    r = run_cli(
        "train", "--algorithm", "protonet-softkmeans", *flags, "--iterations", "1", "--outer-lr", "1e-9",
        "--init-from", str(source / "last.pt"), "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    tuned = read_checkpoint(out / "last.pt").state_dict
    conv = next(k for k in proto if k.endswith("weight") and proto[k].ndim == 4)
    assert torch.allclose(tuned[conv], proto[conv], atol=1e-6)
    # Its budget counts the base's training: the report shows both, and a second fine-tune adds them up.
    base = read_checkpoint(out / "last.pt").training["base"]
    assert base["iterations"] == 3 and base["algorithm"] == "protonet" and base["seconds"] > 0
    assert base["command"].startswith("python -m playground train --algorithm protonet")
    again = tmp_path / "softkm2"
    r = run_cli(
        "train", "--algorithm", "protonet-softkmeans", *flags, "--iterations", "2", "--init-from", str(out / "last.pt"),
        "--out", str(again),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    chain = read_checkpoint(again / "last.pt").training["base"]
    assert chain["iterations"] == 4 and chain["algorithm"] == "protonet-softkmeans"
    assert chain["base"]["command"].startswith("python -m playground train --algorithm protonet ")
    assert run_cli("evaluate", str(again / "last.pt"), "--episodes", "2", "--card").returncode == 0
    r = run_cli("report", "--dir", str(again))
    assert "| 4 + 2 it (fine-tuned from protonet-softkmeans), " in r.stdout, r.stdout
    # MAML's weights are not ProtoNet's: refused with a message naming both.
    r = run_cli("train", "--algorithm", "maml", *flags, "--iterations", "1", "--init-from", str(source / "last.pt"),
                "--out", str(tmp_path / "m"))  # fmt: skip
    assert r.returncode == 2 and "do not fit maml" in r.stderr


def test_task_batching_and_memory_format_flags_reach_maml(capsys):
    from playground.cli import build_parser
    from playground.cli.train import learner_options

    args = build_parser().parse_args(
        ["train", "--algorithm", "maml", "--task-batching", "grouped", "--memory-format", "channels_last"]
    )
    assert learner_options(args) == {"task_batching": "grouped", "memory_format": "channels_last"}
    assert main(["train", "--algorithm", "protonet", "--memory-format", "channels_last"]) == 2
    assert "--memory-format does not apply to --algorithm protonet" in capsys.readouterr().err


@pytest.mark.slow  # real training runs, each command in a fresh process
def test_augment_shift_and_within_alphabet_change_training_and_are_recorded(omniglot, tmp_path):
    from playground.zoo.checkpoints import read_checkpoint

    def train(name: str, *flags: str):
        out = tmp_path / name
        r = run_cli(
            "train",
            *("--algorithm protonet --set hidden=8 --train-ways 20 --query 2 --meta-batch 1 --iterations 3".split()),
            *("--val-every 3 --val-episodes 2 --device cpu --out".split()),
            str(out),
            *flags,
        )
        assert r.returncode == 0, r.stderr
        return read_checkpoint(out / "last.pt")

    plain, shifted, within = (
        train("plain"),
        train("shifted", "--augment-shift", "2"),
        train("within", "--within-alphabet"),
    )
    assert (
        shifted.extra["train_config"]["augment_shift"] == 2
        and shifted.extra["train_config"]["within_alphabet"] is False
    )
    assert within.extra["train_config"]["within_alphabet"] is True
    assert "--augment-shift 2" in shifted.extra["train_config"]["command"]
    # Same seed and episodes otherwise: only the flag can have moved the weights elsewhere.
    for other in (shifted, within):
        assert any(not torch.equal(other.state_dict[k], v) for k, v in plain.state_dict.items())
    r = run_cli("train", "--algorithm", "protonet", "--augment-shift", "9")
    assert r.returncode == 2 and "--augment-shift must be between 0 and 8" in r.stderr


def test_report_rounds_lake_errors_half_up_as_lake_runs_prints_them():
    from playground.zoo.reporting import results_table
    from playground.zoo.shipped import ModelEntry

    card = {"lake_runs": {"error": 0.0625}, "training": {"iterations": 1, "seconds": 60}}
    row = results_table([ModelEntry("m", Path("m.pt"), card)]).splitlines()[-1]
    assert "| 6.3% |" in row  # 25 errors of 400, not the 6.2% of round-half-even
    card["lake_runs"]["inner_steps"] = 1  # measured with steps other than the checkpoint's own: named
    row = results_table([ModelEntry("m", Path("m.pt"), card)]).splitlines()[-1]
    assert "| 6.3% (1 step) |" in row
    card["lake_runs"]["inner_lr"] = 0.1  # and a step size other than its own
    row = results_table([ModelEntry("m", Path("m.pt"), card)]).splitlines()[-1]
    assert "| 6.3% (1 step of 0.1) |" in row


def test_report_papers_sets_published_figures_under_vinyals_models_only():
    from playground.zoo.reporting import results_table
    from playground.zoo.shipped import ModelEntry

    def card(protocol, algorithm="maml", first_order=False, lake=None):
        results = [
            {"n_way": 5, "k_shot": 1, "accuracy": 0.985, "ci95": 0.003, "text": "98.5 ± 0.3 %"},  # 98.7 within CI
            {"n_way": 20, "k_shot": 1, "accuracy": 0.900, "ci95": 0.004, "text": "90.0 ± 0.4 %", "inner_steps": 10},
            {
                "n_way": 20,
                "k_shot": 5,
                "accuracy": 0.989,
                "ci95": 0.001,
                "text": "98.9 ± 0.1 %",
                "inner_steps": 10,
                "inner_lr": 0.05,
            },
        ]
        c = {"algorithm": algorithm, "protocol": protocol, "config": {"first_order": first_order}}
        c |= {"evaluation": {"results": results}, "training": {"iterations": 10, "seconds": 60}}
        return c | ({"lake_runs": {"error": lake}} if lake is not None else {})

    table = results_table([ModelEntry("maml_vinyals", Path("m.pt"), card("vinyals"))], papers=True).splitlines()
    assert "Lake" not in table[0]  # no card has Lake's runs: no column for them
    ours, paper = table[2], table[3]
    assert ours.startswith(
        "| `maml_vinyals` | 98.5 ± 0.3 % | – | 90.0 ± 0.4 % (10 steps) | 98.9 ± 0.1 % (10 steps of 0.05) |"
    )
    assert paper.startswith("| ↳ Finn et al. 2017")
    assert "| 98.7 (reached) | 99.9 | 95.8 (short by 5.8) | 98.9 (reached) |" in paper
    first_order = results_table([ModelEntry("fo", Path("f.pt"), card("vinyals", first_order=True))], papers=True)
    assert "first-order MAML" in first_order and "89.4 (reached)" in first_order
    # A lake model is not set against the papers' split, and keeps its Lake column.
    lake = results_table([ModelEntry("maml_lake", Path("l.pt"), card("lake", lake=0.3))], papers=True)
    assert "↳" not in lake and "| 30.0% |" in lake
    assert "↳" not in results_table([ModelEntry("m", Path("m.pt"), card("vinyals"))])  # only when asked


def test_lake_runs_refuses_a_vinyals_checkpoint(tmp_path, capsys):
    from playground.algorithms import create_learner
    from playground.cli import main
    from playground.zoo.checkpoints import save_checkpoint

    vinyals = save_checkpoint(tmp_path / "v.pt", create_learner("protonet"), train_config={"protocol": "vinyals"})
    for extra in ([], ["--validation", "3"]):
        assert main(["lake-runs", str(vinyals), *extra]) == 2
        err = capsys.readouterr().err
        assert "trained on the vinyals split" in err and "use a lake-protocol checkpoint" in err.lower()


def test_report_papers_adds_our_figure_at_the_papers_own_queries_per_class():
    """Nichol et al. tested Reptile on one query per class: a card figure measured so sits in its row."""
    from playground.zoo.reporting import results_table
    from playground.zoo.shipped import ModelEntry

    def result(accuracy, ci95, **extra):
        text = f"{100 * accuracy:.1f} ± {100 * ci95:.1f} %"
        return {"n_way": 5, "k_shot": 1, "accuracy": accuracy, "ci95": ci95, "text": text, **extra}

    standard = result(0.970, 0.003, inner_steps=50, inner_lr=0.05)
    card = {"algorithm": "reptile", "protocol": "vinyals", "config": {}, "training": {"iterations": 1, "seconds": 60}}
    card["evaluation"] = {"results": [standard], "other_queries": [result(0.978, 0.004, n_query=5, inner_steps=50)]}
    paper = results_table([ModelEntry("r", Path("r.pt"), card)], papers=True).splitlines()[3]
    assert "| 97.68 (short by 0.7) |" in paper  # 5 queries per class is not the paper's count either
    card["evaluation"]["other_queries"].append(result(0.975, 0.004, n_query=1, inner_steps=50, inner_lr=0.05))
    paper = results_table([ModelEntry("r", Path("r.pt"), card)], papers=True).splitlines()[3]
    assert "| 97.68 (short by 0.7; at its 1 query per class: 97.5 ± 0.4 %, reached) |" in paper
    card["evaluation"]["other_queries"][-1] |= {"accuracy": 0.972, "text": "97.2 ± 0.4 %", "inner_lr": 0.1}
    paper = results_table([ModelEntry("r", Path("r.pt"), card)], papers=True).splitlines()[3]
    # a step size other than the standard cell's is named
    assert "(short by 0.7; at its 1 query per class: 97.2 ± 0.4 % (50 steps of 0.1), short by 0.5)" in paper


def test_evaluate_card_keeps_other_query_counts_beside_the_standard_figures(glyphs_test, tmp_path, monkeypatch):
    from playground.algorithms import create_learner
    from playground.cli import main
    from playground.data.protocols import Splits
    from playground.zoo.checkpoints import read_card, save_checkpoint

    path = tmp_path / "m.pt"
    torch.manual_seed(0)
    save_checkpoint(path, create_learner("maml", hidden=8, inner_steps=1), train_config={"protocol": "vinyals"})
    # The test split's characters are none of the training split's: the figures are a test.
    split = [_named(glyphs_test, [f"{name}/character{i:02d}" for i in range(24)]) for name in ("train", "val", "test")]
    splits = Splits("vinyals", *split)
    monkeypatch.setattr("playground.data.protocols.load_splits", lambda *a, **k: splits)

    def evaluate(*flags):
        main(["evaluate", str(path), "--episodes", "3", "--device", "cpu", "--card", *flags])
        return read_card(path).evaluation

    standard = evaluate().results
    assert [(r.n_way, r.k_shot, r.n_query) for r in standard] == [(5, 1, 15)]
    card = evaluate("--query", "1")
    assert card.results == standard  # not replaced by the one-query figure
    assert [(r.n_way, r.k_shot, r.n_query) for r in card.other_queries] == [(5, 1, 1)]
    assert "--query 1" in card.other_queries[0].command
    card = evaluate("--query", "1", "--inner-steps", "2")  # the same count again replaces its figure
    assert [r.inner_steps for r in card.other_queries] == [2] and card.results == standard
    assert len(evaluate("--query", "5").other_queries) == 2


def test_the_papers_queries_per_class_are_those_their_code_tests_on():
    from playground.zoo.papers import PUBLISHED

    assert PUBLISHED["reptile"].queries_for(5, 1) == PUBLISHED["reptile"].queries_for(20, 5) == 1
    assert PUBLISHED["maml"].queries_for(5, 5) == 5 and PUBLISHED["maml"].queries_for(20, 1) == 1
    assert PUBLISHED["protonet"].queries_for(5, 1) is None  # not read: no figure is set beside it


def test_auto_threads_take_the_usable_cpus_less_other_processes_load():
    from playground.runtime.threads import auto_threads

    assert auto_threads(cpus=8, load=0.0) == 8
    assert auto_threads(cpus=8, load=3.2) == 5
    assert auto_threads(cpus=8, load=2.5) == 6  # halves round up: a half-busy CPU is still worth a thread
    assert auto_threads(cpus=2, load=1.3) == 1
    assert auto_threads(cpus=2, load=11.0) == 1  # never none
    assert auto_threads(cpus=4, load=-1.0) == 4  # never more than the CPUs


def test_threads_auto_follows_the_load_and_omp_num_threads(monkeypatch):
    import playground.runtime.threads as threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    monkeypatch.setattr(threads, "load_average", lambda: 2.7)
    busy = threads.choose_threads("auto")
    assert (
        busy.threads == 1 and busy.describe() == "torch threads: 1 (of 4 CPUs, with a load of 2.7 from other processes)"
    )
    monkeypatch.setattr(threads, "load_average", lambda: 0.2)
    idle = threads.choose_threads("auto")
    assert idle.threads == 4 and idle.describe() == ""  # every CPU: nothing worth saying
    assert threads.choose_threads(3).threads == 3  # as asked, load or not
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a person's or torchrun's choice stands
    assert threads.choose_threads("auto").threads == torch.get_num_threads()


@pytest.mark.parametrize(
    "command", [["train"], ["evaluate", "m.pt"], ["lake-runs", "m.pt"], ["calibrate-steps", "m.pt"]]
)
def test_computing_commands_take_threads_and_set_them_for_the_command_only(command, monkeypatch, capsys):
    import playground.cli as cli

    parser = cli.build_parser()
    assert parser.parse_args(command).threads == "auto"
    assert parser.parse_args([*command, "--threads", "3"]).threads == 3
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--threads", "0"])
    assert "--threads must be at least 1" in capsys.readouterr().err
    seen = []
    module = next(c for c in cli.COMMANDS if c.NAME == command[0])
    monkeypatch.setattr(module, "run", lambda args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 3
    assert main([*command, "--threads", str(wanted), "--malloc", "default"]) == 0
    assert seen == [wanted] and torch.get_num_threads() == before


@pytest.mark.omniglot
def test_each_protocol_s_test_split_holds_training_characters_of_the_other(omniglot):
    from playground.data.protocols import load_splits
    from playground.evaluation.few_shot import training_overlap

    built = {}

    def splits_of(protocol):
        return built.setdefault(protocol, load_splits(protocol, data=omniglot, rotations=False))

    for protocol in ("lake", "vinyals"):  # a protocol's own test and validation splits are unseen
        assert training_overlap([protocol], protocol, "test", splits_of) is None
        assert training_overlap([protocol], protocol, "val", splits_of) is None
    # vinyals/test draws its 423 characters from all 50 alphabets: 250 are of lake's 30 background ones.
    lake_on_vinyals = training_overlap(["lake"], "vinyals", "test", splits_of)
    assert (len(lake_on_vinyals.seen), lake_on_vinyals.characters) == (250, 423)
    vinyals_on_lake = training_overlap(["vinyals"], "lake", "test", splits_of)
    assert (len(vinyals_on_lake.seen), vinyals_on_lake.characters) == (486, 659)


def _named(dataset, names):
    from playground.data.protocols import ClassDataset

    return ClassDataset(dataset.images[: len(names)], names)


def test_evaluating_on_a_split_with_training_characters_is_refused_or_marked_and_never_carded(
    glyphs_train, tmp_path, monkeypatch, capsys
):
    from playground.algorithms import create_learner
    from playground.data.protocols import Splits
    from playground.zoo.checkpoints import read_card, save_checkpoint

    def names(prefix, n):
        return [f"{prefix}/character{i:02d}" for i in range(n)]

    # As on Omniglot: vinyals' test split holds characters (and rotations of them) of lake's training split.
    lake = Splits("lake", *(_named(glyphs_train, names(split, 12)) for split in ("train", "val", "test")))
    vinyals_test = names("train", 3) + [f"{n} rot90" for n in names("train", 3)] + names("fresh", 6)
    vinyals = Splits(
        "vinyals", _named(glyphs_train, names("test", 12)), _named(glyphs_train, names("val", 12)),
        _named(glyphs_train, vinyals_test),
    )  # fmt: skip
    monkeypatch.setattr(
        "playground.data.protocols.load_splits", lambda protocol, *a, **k: {"lake": lake, "vinyals": vinyals}[protocol]
    )
    path = save_checkpoint(tmp_path / "m.pt", create_learner("protonet", hidden=8), train_config={"protocol": "lake"})
    flags = ["--episodes", "2", "--device", "cpu", "--malloc", "default", "--threads", "1"]

    assert main(["evaluate", str(path), "--protocol", "vinyals", *flags]) == 2
    err = capsys.readouterr().err
    assert "3 of the 9 characters of the vinyals/test split (train/character00," in err, err
    assert "trained or chosen on (lake protocol)" in err and "--allow-training-classes" in err
    for more in (["--card"], ["--card", "--allow-training-classes"]):
        assert main(["evaluate", str(path), "--protocol", "vinyals", *flags, *more]) == 2
        assert "never written into a card" in capsys.readouterr().err
    assert read_card(path) is None
    assert main(["evaluate", str(path), "--protocol", "vinyals", *flags, "--allow-training-classes"]) == 0
    out, err = capsys.readouterr()
    assert "vinyals/test 5-way 1-shot" in out and "(CONTAMINATED: 3 characters seen in training)" in out
    assert "WARNING: 3 of the 9 characters" in err
    assert main(["evaluate", str(path), *flags, "--card"]) == 0  # its own protocol: a test
    assert read_card(path).results()[0].protocol == "lake"

    # Fine-tuned on lake from a vinyals model: lake's test split holds characters the base trained on.
    base = {"algorithm": "maml", "protocol": "vinyals", "iterations": 1, "seconds": 1.0}
    tuned = save_checkpoint(
        tmp_path / "t.pt", create_learner("maml", hidden=8), {"base": base}, train_config={"protocol": "lake"}
    )
    assert main(["evaluate", str(tuned), *flags]) == 2
    assert "of the 12 characters of the lake/test split" in capsys.readouterr().err
    assert main(["calibrate-steps", str(tuned), "--candidates", "0", "1", *flags[:2], "--no-write"]) == 2
    assert "of the 12 characters of the lake/val split" in capsys.readouterr().err
    assert main(["lake-runs", str(tuned)]) == 2
    assert "trained on the vinyals split" in capsys.readouterr().err


def test_the_malloc_line_comes_with_a_training_run_only(glyphs_train, glyphs_test, tmp_path, monkeypatch, capsys):
    from playground.data.protocols import Splits

    monkeypatch.setattr("playground.cli.keep_freed_memory", lambda: True)  # as glibc does, without changing pytest's
    assert main(["train", "--algorithm", "protonet", "--inner-lr", "0.1"]) == 2  # refused: no run, no line
    assert "malloc:" not in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "none.pt")]) == 2
    assert "malloc:" not in capsys.readouterr().err
    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    flags = "--set hidden=8 --query 2 --meta-batch 1 --iterations 1 --val-episodes 2 --device cpu --threads 1"
    assert main(["train", *flags.split(), "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().err.count("malloc: freed memory is kept for reuse") == 1


def test_a_model_card_given_as_the_checkpoint_is_named_so_with_its_checkpoint(tmp_path, capsys):
    from playground.algorithms import create_learner
    from playground.zoo.checkpoints import save_checkpoint, write_card

    path = save_checkpoint(tmp_path / "m.pt", create_learner("protonet", hidden=8), train_config={"protocol": "lake"})
    card = write_card(path, {"algorithm": "protonet", "evaluation": {"results": []}})
    assert main(["evaluate", str(card)]) == 2
    err = capsys.readouterr().err
    assert f"{card} is a model card, not a checkpoint: its checkpoint is {path}\n" in err, err
    path.unlink()
    assert main(["calibrate-steps", str(card)]) == 2
    assert f"its checkpoint is {path} (there is none)" in capsys.readouterr().err
