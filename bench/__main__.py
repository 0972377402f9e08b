"""`python -m bench [NAME ...] [--quick] [--table]`: run benchmarks, print the table."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import RESULTS_DIR
from bench.registry import BENCHMARKS
from bench.table import load_results, render_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="smoke sizes: seconds each")
    parser.add_argument("--table", action="store_true", help="only print the table")
    parser.add_argument(
        "--results",
        type=Path,
        help=f"where NAME.json goes (default {RESULTS_DIR}; with --quick, a temporary folder)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    results: Path = args.results or RESULTS_DIR
    if args.results is None and args.quick:
        # Smoke sizes never overwrite the results of a full run.
        results = Path(tempfile.mkdtemp(prefix="stemsweep-bench-quick-"))
    if not args.table:
        scratch = Path(tempfile.mkdtemp(prefix="stemsweep-bench-"))
        try:
            for name in names:
                _run_one(name, scratch / name, results, quick=args.quick)
        finally:
            # Removed only at the end: deleting a run's many files makes the next one's
            # file creation slower on some file systems (ext4 without a journal skips
            # recently deleted inodes, one by one), which would skew the next benchmark.
            if args.keep:
                print(f"scratch kept in {scratch}", file=sys.stderr)
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    print(render_table(load_results(results, names)))
    return 0


def _run_one(name: str, workdir: Path, results: Path, *, quick: bool) -> None:
    """Run benchmark `name` in a child interpreter of its own (`bench.one`).

    Linux carries a process's peak RSS over into the children it starts (exec records the
    replaced memory's high-water mark), so every client a benchmark starts would report at
    least the peak of the process that started it. In one process, the `report` benchmark
    grew it to 71 MB and every `versus` client after it then read 71 MB, the plain script
    too; a fresh interpreter per benchmark starts each one's clients from its own size.
    """
    command = [sys.executable, "-m", "bench.one", name, str(workdir), str(results)]
    done = subprocess.run([*command, *(["--quick"] if quick else [])], check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark {name} failed (exit {done.returncode})")


if __name__ == "__main__":
    sys.exit(main())
