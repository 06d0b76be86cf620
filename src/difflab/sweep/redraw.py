"""Redraw a sweep's tables and figure (and a Markdown page) from its cells' files, without running anything::

    python -m difflab.sweep.redraw DIR [--page docs/insights.md]

``--page`` also writes the page described by the grid's ``[report]`` table (:mod:`difflab.sweep.page`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from difflab.errors import DifflabError
from difflab.sweep.page import write_page
from difflab.sweep.report import write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m difflab.sweep.redraw", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="a sweep directory")
    parser.add_argument("--page", type=Path, help="also write this Markdown page from the grid's [report] table")
    args = parser.parse_args(argv)
    try:
        write_results(args.out)
        if args.page:
            print(write_page(args.out, args.page))
    except DifflabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
