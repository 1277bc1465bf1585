"""One table and one curve from several `bench_quality.py` result files (runs of other budgets or rounds).

    python benchmarks/quality_report.py WORK1/quality.json [WORK2/quality.json ...] [--png docs/img/quality_curve.png]

Every run of every file is pooled; medians per budget as `bench_quality.py` computes them. Prints the
markdown table; with --png draws the curve.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import markdown, plot, summarise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="quality.json files written by bench_quality.py")
    parser.add_argument("--png", default=None, help="write the curve here")
    args = parser.parse_args()
    runs = [run for path in args.results for run in json.loads(Path(path).read_text())["runs"]]
    budgets = sorted({run["budget"] for run in runs})
    rows = summarise(runs, budgets)
    print(markdown(rows))
    if args.png:
        plot(rows, runs, Path(args.png))


if __name__ == "__main__":
    main()
