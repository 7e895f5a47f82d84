"""The clone-per-task MAML reference of bench/ computes our meta-gradient; MAML's speed-ups change no gradient."""

from __future__ import annotations

import threading

import pytest
import torch

from bench.reference_maml import meta_gradient_gap, playground_meta_gradients, random_tasks, reference_meta_gradients
from playground.algorithms import create_learner
from playground.algorithms.maml import MAML
from playground.algorithms.task_threads import THREAD_PREFIX
from playground.models import Conv4
from playground.models.conv4 import batch_stats_embed

# float64: two correct implementations agree to ~1e-14 of the largest gradient, a wrong term shows by far more.
TOLERANCE = 1e-10


def _learner(algorithm: str = "maml", **options) -> MAML:
    """A float64 learner with a random (non-zero) head, so every term of the meta-gradient is exercised."""
    torch.manual_seed(0)
    learner = create_learner(algorithm, n_way=5, hidden=16, **options).double()
    with torch.no_grad():
        learner.head_weight.normal_(0, 0.5)
        learner.head_bias.normal_(0, 0.5)
    return learner


def _relative_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    scale = max(float(v.abs().max()) for v in a.values())
    return max(float((a[k] - b[k]).abs().max()) for k in a) / scale


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_reference_meta_gradient_equals_ours(inner_steps):
    gap, scale = meta_gradient_gap(hidden=16, n_tasks=2, inner_steps=inner_steps)
    assert scale > 1.0  # a real gradient, not zeros
    assert gap <= TOLERANCE * scale, f"{gap:.2e} of {scale:.2e}"


def test_reference_check_sees_a_missing_second_order_term():
    """The comparison is sharp enough to catch the mistake a reference is most likely to make."""
    learner = _learner(head="per_class", inner_steps=2)
    tasks = random_tasks(2, 5, 1, 3, dtype=torch.float64)
    ours = playground_meta_gradients(learner, tasks)
    first_order = reference_meta_gradients(learner, tasks, inner_steps=2, first_order=True)
    assert _relative_gap(ours, first_order) > 1e-3


def test_reference_meta_gradient_float32():
    """In float32, as benchmarked, the two agree to float rounding."""
    gap, scale = meta_gradient_gap(hidden=16, n_tasks=2, inner_steps=1, dtype=torch.float32)
    assert gap <= 1e-4 * scale, f"{gap:.2e} of {scale:.2e}"


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 2])
@pytest.mark.parametrize("bn", ["transductive", "per_example"])
def test_fast_forward_and_memory_format_keep_the_meta_gradient(bn, inner_steps, first_order):
    """NHWC, NCHW and the module's own forward (ReLU before pooling) give one meta-gradient."""
    tasks = random_tasks(2, 5, 1, 3, dtype=torch.float64)
    grads = {}
    for name, options in {
        "module": {"memory_format": "contiguous"},
        "nchw": {"memory_format": "contiguous"},
        "nhwc": {"memory_format": "channels_last"},
    }.items():
        learner = _learner(bn=bn, inner_steps=inner_steps, first_order=first_order, task_batching="loop", **options)
        if name == "module":
            learner._fast_body = False
        grads[name] = playground_meta_gradients(learner, tasks)
    assert _relative_gap(grads["module"], grads["nchw"]) <= TOLERANCE
    assert _relative_gap(grads["module"], grads["nhwc"]) <= TOLERANCE


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 2])
@pytest.mark.parametrize("head", ["shared", "per_class"])
@pytest.mark.parametrize("algorithm", ["maml", "metasgd"])
def test_grouped_tasks_match_the_loop(algorithm, head, inner_steps, first_order):
    tasks = random_tasks(3, 5, 1, 3, dtype=torch.float64)
    options = {"head": head, "inner_steps": inner_steps, "first_order": first_order}
    loop = playground_meta_gradients(_learner(algorithm, task_batching="loop", **options), tasks)
    grouped = playground_meta_gradients(_learner(algorithm, task_batching="grouped", **options), tasks)
    assert _relative_gap(loop, grouped) <= TOLERANCE


def _train_step_meta_gradients(learner: MAML, tasks) -> dict[str, torch.Tensor]:
    """The meta-gradient `meta_train_step` hands the optimizer (caught by its grad hook)."""
    grads: dict[str, torch.Tensor] = {}
    learner.meta_train_step(
        tasks, grad_hook=lambda m: grads.update({k: p.grad.clone() for k, p in m.named_parameters()})
    )
    return grads


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 2])
@pytest.mark.parametrize("algorithm", ["maml", "metasgd", "anil"])
def test_threaded_tasks_match_the_loop(algorithm, inner_steps, first_order, monkeypatch):
    tasks = random_tasks(5, 5, 1, 3, dtype=torch.float64)
    options = {"inner_steps": inner_steps, "first_order": first_order}
    loop = playground_meta_gradients(_learner(algorithm, task_batching="loop", **options), tasks)
    seen: list[str] = []
    task_loss = MAML.task_query_loss

    def spy(self, fast0, task, *args):
        seen.append(f"{threading.current_thread().name} at {torch.get_num_threads()} thread")
        return task_loss(self, fast0, task, *args)

    monkeypatch.setattr(MAML, "task_query_loss", spy)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # two workers, whatever the machine running the tests allows
    try:
        threaded = _train_step_meta_gradients(_learner(algorithm, task_batching="threads", **options), tasks)
        assert torch.get_num_threads() == 2  # the workers' one thread each does not leak out
    finally:
        torch.set_num_threads(threads)
    # Five tasks on two workers, each on one torch thread.
    assert len(seen) == 5 and all(s.endswith(" at 1 thread") for s in seen)
    assert len({s.split(" at ")[0] for s in seen}) == 2 and all(s.startswith(THREAD_PREFIX) for s in seen)
    assert _relative_gap(loop, threaded) <= TOLERANCE


def test_grouped_is_refused_where_it_cannot_run():
    with pytest.raises(ValueError, match="grouped"):
        create_learner("anil", task_batching="grouped")  # its own inner loop
    with pytest.raises(ValueError, match="grouped"):
        create_learner("maml", task_batching="grouped", bn="per_example")


def test_auto_batching_never_picks_vmap_for_second_order_transductive_maml():
    learner = create_learner("maml", hidden=8)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert learner.batching_strategy(cpu, 1).name == "loop"
        torch.set_num_threads(2)
        assert learner.batching_strategy(cpu, 1).name == "threads"  # tasks side by side, one core each
    finally:
        torch.set_num_threads(threads)
    assert learner.batching_strategy(cuda, 0).name == "vmap"  # first order: exact under vmap
    assert learner.batching_strategy(cuda, 1).name == "grouped"
    assert learner.batching_strategy(cuda, 5).name == "grouped"


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_stats_embed_is_the_modules_embedding(channels_last):
    torch.manual_seed(0)
    bodies = [Conv4(hidden=8, track_running_stats=False).double() for _ in range(3)]
    x = torch.rand(3, 6, 1, 28, 28, dtype=torch.float64)
    expected = torch.stack([body.embed(xi) for body, xi in zip(bodies, x)])
    params = [dict(body.named_parameters()) for body in bodies]
    one = torch.stack([batch_stats_embed(bodies[0], p, xi, channels_last) for p, xi in zip(params, x)])
    stacked = {k: torch.stack([p[k] for p in params]) for k in params[0]}
    grouped = batch_stats_embed(bodies[0], stacked, x, channels_last)
    assert torch.allclose(one, expected, atol=1e-12)
    assert torch.allclose(grouped, expected, atol=1e-12)


@pytest.mark.parametrize(
    "algorithm, options", [("maml", {"inner_steps": 2}), ("maml", {"first_order": True}), ("metasgd", {})]
)
def test_task_by_task_backward_gives_the_meta_loss_gradient(algorithm, options):
    """meta_train_step backpropagates task by task (less memory); the gradient is meta_loss's."""
    tasks = random_tasks(3, 5, 1, 3, dtype=torch.float64)
    expected = playground_meta_gradients(_learner(algorithm, task_batching="loop", **options), tasks)
    seen = {}
    learner = _learner(algorithm, task_batching="loop", **options)
    learner.meta_train_step(
        tasks, grad_hook=lambda m: seen.update({k: p.grad.clone() for k, p in m.named_parameters()})
    )
    assert _relative_gap(expected, seen) <= TOLERANCE


@pytest.mark.omniglot
def test_eval_speed_bench_runs_the_cards_evaluation(omniglot):
    """The benchmark times the same evaluation the model cards come from: same accuracy for the same episodes."""
    import subprocess
    import sys
    from pathlib import Path

    from playground.data.protocols import load_splits
    from playground.evaluation.few_shot import evaluate_few_shot
    from playground.zoo.shipped import shipped_models

    out = subprocess.run(
        [sys.executable, "-m", "bench.eval_speed", "--models", "pixel_nn", "--episodes", "20", "--threads", "1"],
        capture_output=True, text=True, timeout=300, check=True, cwd=Path(__file__).resolve().parents[1],
    ).stdout  # fmt: skip
    row = next(line for line in out.splitlines() if line.startswith("pixel_nn"))
    entry = next(m for m in shipped_models() if m.name == "pixel_nn")
    expected = evaluate_few_shot(
        entry.load("cpu"), load_splits("lake", data=omniglot, rotations=False).test, 5, 1, 15, 20
    )
    assert row.split()[-4:] == expected.format().split(), (row, expected.format())


@pytest.mark.parametrize("size", [28, 7, 4])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_where_pooling_is_max_pooling_to_the_second_derivative(size, layout):
    """The compiled graphs' pooling: max_pool2d's values and gradients, ties (binary glyphs) included."""
    from playground.models.conv4 import max_pool_2x2_where

    g = torch.Generator().manual_seed(size)
    x = torch.randint(0, 3, (2, 3, size, size), generator=g).double()  # many ties
    x = x.to(memory_format=layout).requires_grad_()
    v = torch.randn(2, 3, size // 2, size // 2, generator=g, dtype=torch.float64)
    results = []
    for pool in (lambda t: torch.nn.functional.max_pool2d(t, 2), max_pool_2x2_where):
        y = pool(x)
        (gx,) = torch.autograd.grad((y * v).sum() ** 2, x, create_graph=True)  # a second derivative too
        (ggx,) = torch.autograd.grad((gx * x).sum(), x)
        results.append((y, gx, ggx))
    (y, gx, ggx), (y2, gx2, ggx2) = results
    assert torch.equal(y, y2) and torch.equal(gx, gx2)
    if layout == torch.contiguous_format:
        assert torch.equal(ggx, ggx2)
    else:  # max_pool2d's gradient comes back NHWC, ours NCHW: the second pass sums in another float order
        torch.testing.assert_close(ggx, ggx2, rtol=1e-12, atol=1e-12)
    assert results[0][1].abs().sum() > 0 and results[0][2].abs().sum() > 0


@pytest.mark.slow  # torch.compile: tens of seconds to compile the graph
def test_the_compiled_step_hands_the_optimizer_the_loops_meta_gradient():
    # task_batching="compiled" (train --task-batching compiled; bench.maml_speed --compile times it against the
    # reference) means something only if it computes the loop's meta-gradient, which is the reference's
    # (test_reference_meta_gradient_equals_ours). One graph covers the default shared head (expanded inside the
    # graph), two inner steps and NHWC, where pooling runs as a chain of where (conv4._max_pool).
    tasks = random_tasks(3, 5, 1, 3, dtype=torch.float64, seed=2)
    options = {"inner_steps": 2, "head": "shared"}
    loop = _train_step_meta_gradients(_learner(task_batching="loop", **options), tasks)
    compiled_learner = _learner(task_batching="compiled", memory_format="channels_last", **options)
    compiled = _train_step_meta_gradients(compiled_learner, tasks)
    assert set(compiled) == set(loop) and compiled["head_weight"].shape == (1, 16)
    assert _relative_gap(loop, compiled) <= TOLERANCE
    # The step was taken: the weights moved, and a second step reuses the compiled function.
    before = {k: p.detach().clone() for k, p in compiled_learner.named_parameters()}
    compiled_learner.meta_train_step(tasks)
    assert any(not torch.equal(before[k], p) for k, p in compiled_learner.named_parameters())


def test_compiled_is_refused_where_a_gradient_would_be_lost():
    with pytest.raises(ValueError, match="compiled"):
        create_learner("metasgd", task_batching="compiled")  # its learned step sizes


@pytest.mark.slow  # torch.compile: tens of seconds to compile the graph
def test_compiled_reptile_fits_each_task_as_the_loop_does():
    # Reptile with task_batching="compiled" (bench.maml_speed --compile): each task's whole fit is one
    # compiled graph. Compared on the adapted weights themselves: the outer Adam's first step would
    # hide a wrong magnitude.
    tasks = random_tasks(3, 5, 1, 3, dtype=torch.float64, seed=3)
    # Two inner steps rather than its default five: the graph is unrolled, and compiling it costs per step.
    loop = _learner("reptile", head="per_class", inner_steps=2, task_batching="loop").adapted_weights(tasks)
    learner = _learner("reptile", head="per_class", inner_steps=2, task_batching="compiled")
    compiled = learner.adapted_weights(tasks)
    start = {k: t.detach() for k, t in learner.initial_fast_weights(5).items()}
    assert max(float((loop[0][k] - start[k]).abs().max()) for k in start) > 1e-3  # the fit did move them
    assert _relative_gap(loop[0], compiled[0]) <= TOLERANCE
    assert torch.allclose(loop[1], compiled[1], rtol=1e-10) and torch.equal(loop[2], compiled[2])
    # And the compiled fit serves the meta-update.
    before = {k: p.detach().clone() for k, p in learner.named_parameters()}
    learner.meta_train_step(tasks)
    assert any(not torch.equal(before[k], p) for k, p in learner.named_parameters())
