"""`python -m bench.one NAME WORKDIR RESULTS [--quick]`: one benchmark, in this process.

`python -m bench` starts one of these per benchmark (see `bench.__main__._run_one`), so
that the clients a benchmark starts report their own peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.harness import Options, write_result
from bench.registry import BENCHMARKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.one", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("workdir", type=Path)
    parser.add_argument("results", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    module = BENCHMARKS[args.name]
    print(f"{args.name}: {module.TITLE} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    document = module.run(Options(quick=args.quick, workdir=args.workdir))
    path = write_result(document, args.results)
    verdict = "all targets met" if document["all_met"] else "TARGET MISSED"
    if document.get("skipped"):
        verdict = f"skipped: {document['skipped']}"
    print(f"  {verdict}; {time.monotonic() - started:.0f} s; wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
