"""Write the noise floors that ship with difflab (``difflab/evaluation/shipped_floors``): those of evaluating the
given runs as the demo does (n = 2000, seed 0), estimated afresh in an empty cache folder and copied over.

    make demo && .venv/bin/python scripts/ship_floors.py demo-out/recommended

Rerun it after FLOOR_VERSION changes (the shipped entries then no longer match and are ignored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DIFFLAB_CACHE_DIR"] = tmp  # before difflab reads it: nothing cached, nothing shipped reused
        from difflab.evaluation import floor_cache
        from difflab.evaluation.report import evaluate_run

        shipped = floor_cache.SHIPPED_DIR
        floor_cache.SHIPPED_DIR = Path(tmp) / "none"
        for run in args.runs:
            evaluate_run(run, n=args.n, seed=0)
        shipped.mkdir(exist_ok=True)
        for entry in sorted((Path(tmp) / "floors").glob("*.json")):
            shutil.copyfile(entry, shipped / entry.name)
            print(f"shipped {entry.name}")


if __name__ == "__main__":
    main()
