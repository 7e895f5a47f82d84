"""``ship``: copy a trained checkpoint and its model card without the resume state."""

from __future__ import annotations

import argparse

from playground.zoo.checkpoints import ship

NAME = "ship"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    sh = subparsers.add_parser(
        NAME, help="copy a trained checkpoint and its model card without the resume state (optimizer, RNG)"
    )
    sh.add_argument("checkpoint")
    sh.add_argument("target", help="e.g. assets/checkpoints/NAME.pt")
    sh.add_argument("--note", default=None, help="the card's note: how the model was made, what it is for")
    return sh


def run(args: argparse.Namespace) -> None:
    path, card = ship(args.checkpoint, args.target, note=args.note)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    if card is None:
        print(f"{args.checkpoint} has no model card: run `evaluate {path} --card` to give the shipped model one")
    else:
        print(f"{card}: its model card")
