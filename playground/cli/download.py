"""``download``: fetch Omniglot and Lake's runs, checked against their checksums."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playground.cli.common import add_data_dir_flag
from playground.data.download import base_url, download_data, megabytes, missing_files
from playground.data.omniglot import default_data_dir

NAME = "download"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    d = subparsers.add_parser(
        NAME, help="fetch Omniglot and Lake's runs into the data folder, checked against their checksums"
    )
    add_data_dir_flag(d, help="default: $PLAYGROUND_DATA, else the folder the README names")
    return d


def run(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    todo = missing_files(data_dir)
    if not todo:
        print(f"Omniglot and Lake's runs are already in {data_dir}.")
        return
    print(f"Downloading {', '.join(f.name for f in todo)} (about {megabytes(todo)} MB) from {base_url()}")
    live = sys.stdout.isatty()
    shown = {"tenth": -1}

    def progress(done: int, total: int, name: str) -> None:
        text = f"  {done / 1e6:5.1f} of {total / 1e6:.1f} MB ({name})"
        if live:
            print(f"\r{text}   ", end="", flush=True)
        elif total and 10 * done // total > shown["tenth"]:  # a log gets one line per tenth, not per chunk
            shown["tenth"] = 10 * done // total
            print(text, flush=True)

    try:
        download_data(data_dir, todo, progress)
    finally:
        if live:
            print()
    print(f"Omniglot and Lake's runs are in {data_dir}, checked against their checksums.")
