"""Meta-training under bfloat16 autocast (``train --precision bf16``): it reaches every task, it is
really applied, and a model still learns."""

from __future__ import annotations

import threading

import pytest
import torch

from playground.algorithms import create_learner
from playground.algorithms.task_threads import THREAD_PREFIX, map_tasks
from playground.data.episodes import TaskSampler
from playground.runtime.precision import (
    autocast_state,
    check_precision,
    compile_autocast,
    compile_options,
    training_autocast,
)

CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_task_workers_compute_under_the_callers_autocast(two_threads):
    """Autocast is per thread: the task workers must enter the caller's, or bf16 would silently be fp32."""
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.randn(2, 1, 8, 8)

    def task(i: int):
        return autocast_state(), conv(x).dtype, threading.current_thread().name

    with training_autocast(CPU, "bf16"):
        under = map_tasks(task, 4)
    assert all(name.startswith(THREAD_PREFIX) for _, _, name in under)  # really on the workers
    assert all(state == (True, torch.bfloat16) and dtype == torch.bfloat16 for state, dtype, _ in under)
    plain = map_tasks(task, 4)
    assert all(not state[0] and dtype == torch.float32 for state, dtype, _ in plain)


def _meta_grad(glyphs, precision: str, algorithm: str = "maml", **options) -> torch.Tensor:
    """The meta-gradient of one meta-batch, as the outer update sees it."""
    torch.manual_seed(0)
    learner = create_learner(algorithm, hidden=32, **{"inner_lr": 0.4, "inner_steps": 1, **options})
    tasks = TaskSampler(glyphs, 5, 1, 5, seed=0).sample_batch(4)
    seen = []
    with training_autocast(CPU, precision):
        learner.meta_train_step(
            tasks,
            grad_hook=lambda m: seen.append(
                torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
            ),
        )
    return seen[0].double()


@pytest.mark.parametrize("batching", ["loop", "threads"])
def test_bf16_meta_gradient_is_near_the_fp32_one_but_not_it(batching, glyphs_test, two_threads):
    fp32 = _meta_grad(glyphs_test, "fp32", task_batching=batching)
    bf16 = _meta_grad(glyphs_test, "bf16", task_batching=batching)
    assert bf16.dtype == fp32.dtype and bool(torch.isfinite(bf16).all())
    error = float((bf16 - fp32).norm() / fp32.norm())
    # Computed in bfloat16 (8-bit mantissa), not float32, and still pointing the same way.
    assert error > 1e-3, f"{batching}: relative difference {error:.1e}: autocast did not reach the step"
    assert float(torch.nn.functional.cosine_similarity(bf16, fp32, dim=0)) > 0.98


@pytest.mark.slow  # torch.compile's inductor: tens of seconds a graph
def test_compiled_task_batching_computes_in_bf16_too(glyphs_test):
    """torch 2.14's inductor fails on the bf16 graph with its default fusion (`compile_options` says why).

    MAML's graph stands for every compiled one: Reptile's fit compiles at the same call site, with the same
    options (`task_batching.compiled`)."""
    # The float32 side runs the task loop: the compiled step computes the loop's meta-gradient to float rounding
    # (tests/test_bench_reference.py), far below the bf16 gap asserted here, and one graph is compiled, not two.
    seen = {}
    for precision, batching in (("fp32", "loop"), ("bf16", "compiled")):
        seen[precision] = _meta_grad(
            glyphs_test, precision, algorithm="maml", task_batching=batching, memory_format="channels_last"
        )
    error = float((seen["bf16"] - seen["fp32"]).norm() / seen["fp32"].norm())
    assert error > 1e-3, f"relative difference {error:.1e}: autocast did not reach the compiled graph"
    assert float(torch.nn.functional.cosine_similarity(seen["bf16"], seen["fp32"], dim=0)) > 0.98


def test_compile_options_only_change_graphs_under_autocast():
    assert compile_options(compile_autocast()) is None
    with training_autocast(CPU, "bf16"):
        assert compile_autocast() == "cpu:torch.bfloat16"
        assert compile_options(compile_autocast()) == {"cpp.max_horizontal_fusion_size": 1}


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="--precision must be one of fp32, bf16 \\(got 'fp16'\\)"):
        check_precision("fp16")


@pytest.mark.slow  # two meta-training runs
def test_bf16_training_learns_as_fp32_does(glyphs_train, glyphs_test, tmp_path, monkeypatch):
    """`train --precision bf16` end to end: MAML on held-out classes as far above chance as in float32."""
    from playground.data.protocols import Splits
    from playground.training import TrainConfig, train
    from playground.zoo.checkpoints import read_checkpoint

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    final, said = {}, []
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(
            algorithm="maml", ways=5, shots=1, query=5, meta_batch=4, iterations=40, val_every=40, val_episodes=40,
            device="cpu", out=str(tmp_path / precision), precision=precision,
            learner={"hidden": 32, "inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 1, "outer_lr": 3e-3},
        )  # fmt: skip
        torch.manual_seed(0)
        best = train(cfg, echo=lambda *a: said.append(" ".join(map(str, a))))
        final[precision] = read_checkpoint(best).training["best_val"]
        assert read_checkpoint(tmp_path / precision / "last.pt").extra["train_config"]["precision"] == precision
    print(final)
    assert final["bf16"] >= 0.4, final  # 5-way chance is 20%
    assert final["bf16"] >= final["fp32"] - 0.1, final
    assert any("bfloat16 autocast" in s for s in said) and not any("bfloat16" in s for s in said[:1])


def test_the_benchmark_times_bf16_against_the_reference_in_both_precisions():
    from bench.maml_speed import cases, in_bf16

    assert in_bf16(lambda tasks: autocast_state(), CPU)(None) == (True, torch.bfloat16)
    rows = {c.label.strip(): c for c in cases(CPU, 5, variants=False, compile_=False, bf16=True) if "bf16" in c.label}
    for algorithm in (
        "MAML 2nd order, 1 step",
        "MAML 2nd order, 5 steps",
        "MAML 1st order, 5 steps",
        "Reptile, 5 steps",
    ):
        against_fp32 = rows[f"{algorithm}: threads, NHWC, bf16"]
        against_bf16 = rows[f"{algorithm}: threads, NHWC, bf16 (ref. bf16)"]
        assert against_fp32.reference is not None and against_bf16.reference is not None
        # The fp32 row's reference is the plain one; the other's runs under the same autocast.
        assert against_fp32.reference.__name__ != "run" and against_bf16.reference.__name__ == "run"
    assert rows["ProtoNet: bf16"].reference is None
