"""``ensemble``: combine trained checkpoints into one."""

from __future__ import annotations

import argparse

from playground.cli.common import command_line, non_negative

NAME = "ensemble"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    en = subparsers.add_parser(
        NAME, help="combine trained checkpoints into one (log-probabilities averaged, over shifted views)"
    )
    en.add_argument("checkpoints", nargs="+", help="the members: trained checkpoints of one protocol")
    en.add_argument(
        "--view-shift",
        type=non_negative("--view-shift"),
        default=0,
        help="also average over every shift of up to this many pixels each way, support and query (0-3; 1: 9 views)",
    )
    en.add_argument(
        "--plain-support-for-steps",
        action="store_true",
        help="members with inner steps (MAML and kin) adapt to the plain support, not its shifted views (a ninth "
        "of their cost at --view-shift 1); their queries are still viewed",
    )
    en.add_argument("--out", required=True, help="the ensemble checkpoint, e.g. assets/checkpoints/NAME.pt")
    return en


def run(args: argparse.Namespace) -> None:
    from playground.zoo.assemble import save_ensemble

    step_views = not args.plain_support_for_steps
    path = save_ensemble(
        args.checkpoints, args.out, view_shift=args.view_shift, command=command_line(args), step_views=step_views
    )
    print(
        f"{path}: an ensemble of {len(args.checkpoints)}, view shift {args.view_shift}, "
        f"{path.stat().st_size / 1e6:.2f} MB"
    )
