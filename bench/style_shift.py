"""The style-shift benchmark: each shipped model per shift and overall, with 95% CIs.

    python -m bench.style_shift                                   # the default models, 10 episodes per cell
    python -m bench.style_shift --episodes 100 --out test-artifacts/style_shift.json
    python -m bench.style_shift --models protonet_lake pixel_nn --shifts none photo mixed

Evaluation-alphabet episodes whose support and query images are each shifted on their own
(`playground.style_bench`), through the app's `preprocess_image`, each model adapting with its card's
settings. The shifted images are cached, so a re-run only evaluates.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from playground.style_bench import (
    DEFAULT_EPISODES,
    DEFAULT_MODELS,
    DEFAULT_QUERIES,
    ROWS,
    SETTINGS,
    format_table,
    style_shift_benchmark,
)
from playground.threads import set_threads
from playground.zoo import shipped_models

DEFAULT_OUT = Path("test-artifacts") / "style_shift.json"


def setting(text: str) -> tuple[int, int]:
    ways, _, shots = text.partition("x")
    try:
        return int(ways), int(shots)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a setting is WAYSxSHOTS, e.g. 5x1 (got {text!r})") from None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="shipped model names")
    ap.add_argument("--shifts", nargs="+", default=list(ROWS), choices=ROWS, help="rows (default: all)")
    ap.add_argument("--settings", nargs="+", type=setting, default=list(SETTINGS), help="WAYSxSHOTS, e.g. 5x1 20x1")
    ap.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="episodes per shift and setting")
    ap.add_argument("--query", type=int, default=DEFAULT_QUERIES, help="queries per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the shifted images")
    ap.add_argument("--threads", default="auto", help="torch threads (auto: as the CLI's --threads)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default %(default)s)")
    args = ap.parse_args(argv)
    set_threads(args.threads if args.threads == "auto" else int(args.threads))
    entries = {e.name: e for e in shipped_models()}
    unknown = [m for m in args.models if m not in entries]
    if unknown:
        raise SystemExit(f"no shipped model named {', '.join(unknown)}; there are {', '.join(entries)}")
    learners = {m: entries[m].load("cpu", warm=False) for m in args.models}
    t0 = time.perf_counter()
    cells = style_shift_benchmark(
        learners,
        args.shifts,
        args.settings,
        args.episodes,
        args.query,
        args.seed,
        workers=args.workers,
        progress=lambda line: print(line, flush=True),
    )
    took = time.perf_counter() - t0
    print(format_table(cells))
    print(f"\n{took:.0f} s; {torch.get_num_threads()} torch thread(s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": "python -m bench.style_shift " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "episodes_per_cell": args.episodes,
        "queries_per_class": args.query,
        "seed": args.seed,
        "seconds": round(took, 1),
        "results": [c.as_dict() for c in cells],
    }
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
