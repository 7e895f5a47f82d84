"""Every GPU figure of the benchmarks in one run that fits one device call (under 10 minutes).

    python -m bench.gpu_figures OUT_DIR                # on a machine with CUDA
    python -m bench.gpu_figures OUT_DIR --check        # here: each step's flags parse, nothing runs

No GPU has been lent to this project yet, and a session that gets one has about 15 minutes of it,
start-up included. This runs the benchmarks in order of what they are most needed for, each in its
own process with a time limit, under one overall budget (``--budget``, seconds): a step that would
start with too little time left is skipped, and one that runs over its limit is stopped, so the
call returns in time and keeps every log written so far. Each step's output goes to
``OUT_DIR/<step>.log`` (at most 8 files, what the device tool brings back), with its command, exit
code and seconds at the top and bottom; ``OUT_DIR/summary.log`` lists the steps.

With the device tool, the data travels as an ignored copy inside the checkout (``data/omniglot``,
where `playground.data.omniglot.default_data_dir` looks when ``../shared`` is absent)::

    mkdir -p data && cp -r ../shared/data/omniglot data/      # once, here
    run(command="python3 -m bench.gpu_figures $OUT", carry=["data"], timeout_s=600)
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from playground.zoo.shipped import shipped_models

ABOUT = (
    "import os, platform, torch; "
    "gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'; "
    "print(f'{gpu}; torch {torch.__version__}; {os.cpu_count()} CPUs; Python {platform.python_version()}')"
)


@dataclass(frozen=True)
class Step:
    """One benchmark run: its log name, its time limit (s), and its module and arguments."""

    name: str
    limit: float
    module: str
    args: tuple[str, ...]


def steps(device: str) -> list[Step]:
    """The runs, most wanted first: the 5x meta-training goal, app latency, time to accuracy, the rest."""
    maml_tta = (
        "--algorithm maml --meta-batch 8 --query 5 --set inner_lr=0.4 --set inner_steps=1 "
        "--set test_inner_steps=3 --cosine-over 10000 --check-every 500 --max-minutes 3"
    ).split()
    return [
        # Second-order MAML (and first-order, Reptile, ProtoNet) against the clone-per-task
        # reference, every task batching: which one wins on a GPU.
        Step("maml_speed", 150, "bench.maml_speed", ("--device", device, "--variants", "--steps", "3")),
        # bfloat16 autocast (train --precision bf16): tensor cores against float32, both sides alike.
        Step(
            "maml_bf16",
            60,
            "bench.maml_speed",
            ("--device", device, "--bf16", "--match", "1 step: bf16", "--steps", "3"),
        ),
        # The app's task sizes, every shipped model but `scratch` (it trains a network from nothing),
        # as the CPU table in bench/README.md.
        Step(
            "adapt_latency",
            90,
            "bench.adapt_latency",
            ("--device", device, "--ways", "2", "5", "10", "20", "--shots", "1", "5", "--markdown")
            + ("--models", *(m.name for m in shipped_models() if m.name != "scratch")),
        ),
        Step(
            "tta_protonet",
            120,
            "bench.time_to_accuracy",
            ("--algorithm", "protonet", "--train-ways", "60", "--query", "5", "--meta-batch", "1")
            + ("--max-minutes", "1.5", "--device", device),
        ),
        Step("tta_maml", 240, "bench.time_to_accuracy", (*maml_tta, "--device", device)),
        # Compiled in float32, then in bfloat16 (the rows print in that order, so a step cut short by
        # its limit loses the bfloat16 rows first).
        Step(
            "maml_compile",
            120,
            "bench.maml_speed",
            ("--device", device, "--compile", "--bf16", "--match", "1 step: torch.compile", "--steps", "3"),
        ),
        Step("eval_speed", 60, "bench.eval_speed", ("--device", device)),
    ]


class _Parsed(Exception):
    """Raised by `_parse_then_stop` once a step's own parser has accepted its arguments."""


_parse_args = argparse.ArgumentParser.parse_args


def _parse_then_stop(self, args=None, namespace=None):
    _parse_args(self, args, namespace)  # a bad flag exits here, with argparse's message
    raise _Parsed


def check(plan: list[Step]) -> list[str]:
    """Each step's arguments as its own parser reads them, without running it: the problems found."""
    problems = []
    for step in plan:
        module = importlib.import_module(step.module)
        saved = sys.argv
        sys.argv = [step.module, *step.args]
        argparse.ArgumentParser.parse_args = _parse_then_stop
        try:
            module.main()
            problems.append(f"{step.name}: {step.module}.main returned before parsing its arguments")
        except _Parsed:
            pass
        except SystemExit as e:
            problems.append(f"{step.name}: {step.module} refused {' '.join(step.args)!r} (exit {e.code})")
        finally:
            argparse.ArgumentParser.parse_args = _parse_args
            sys.argv = saved
    return problems


def run(plan: list[Step], out: Path, budget: float, python: str = sys.executable) -> list[str]:
    """Run the steps in order within ``budget`` seconds; one summary line per step."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    # The hardware and software every figure below was taken on.
    about = subprocess.run([python, "-c", ABOUT], capture_output=True, text=True, env=env, timeout=120)
    lines = [(about.stdout or about.stderr).strip()]
    print(lines[0], flush=True)
    for step in plan:
        left = budget - (time.monotonic() - start)
        if left < min(step.limit, 30):
            lines.append(f"{step.name}: skipped, {left:.0f} s of the budget left")
            continue
        limit = min(step.limit, left)
        argv = [python, "-m", step.module, *step.args]
        t = time.monotonic()
        with open(out / f"{step.name}.log", "w") as log:
            log.write(f"$ {' '.join(argv)}  (limit {limit:.0f} s)\n")
            log.flush()
            try:
                code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=limit).returncode
                ended = f"exit {code}"
            except subprocess.TimeoutExpired:
                ended = f"stopped at its limit of {limit:.0f} s"
            line = f"{step.name}: {ended} after {time.monotonic() - t:.0f} s"
            log.write(f"\n{line}\n")
        lines.append(line)
        print(line, flush=True)
    (out / "summary.log").write_text("\n".join(lines) + "\n")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="folder for the logs (the device tool's $OUT)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=540, help="seconds for all the steps together")
    ap.add_argument("--check", action="store_true", help="only check that every step's flags parse")
    args = ap.parse_args(argv)
    plan = steps(args.device)
    if args.check:
        problems = check(plan)
        print("\n".join(problems) or f"all {len(plan)} steps parse")
        return 1 if problems else 0
    run(plan, args.out, args.budget)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
