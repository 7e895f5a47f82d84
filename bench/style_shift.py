"""The style-shift benchmark: each shipped model per shift and overall, with 95% CIs.

    python -m bench.style_shift                      # the default models; rows none and mixed; 10 episodes a cell
    python -m bench.style_shift --shifts all --models protonet_lake softkmeans_lake matching_lake pixel_nn
    python -m bench.style_shift --shifts none photo mixed --settings 5x1 --episodes 100

Evaluation-alphabet episodes whose support and query images are each shifted on their own
(`playground.evaluation.style_shift`), through the app's `preprocess_image`, each model adapting with its card's
settings. The shifted images are cached, so a re-run only evaluates. ``python -m playground style-shift``
is the same command.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from playground.evaluation.style_shift import add_arguments, run_from_args
from playground.runtime.threads import AUTO, set_threads


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--threads", default=AUTO, help="torch CPU threads, a number or auto (default %(default)s)")
    args = ap.parse_args(argv)
    set_threads(args.threads if args.threads == AUTO else int(args.threads))
    argv = sys.argv[1:] if argv is None else argv
    try:
        run_from_args(args, shlex.join(["python", "-m", "bench.style_shift", *argv]), lambda s: print(s, flush=True))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
