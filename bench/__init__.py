"""stemsweep's benchmarks: `make bench` (= `python -m bench`) runs them all.

Each benchmark measures ratios in one run against the simulator (in its own process, with
`--time-scale` so that minutes of simulated API time take seconds) and writes
`bench/results/NAME.json`: its inputs, the machine and its load, the numbers, and the
targets with whether they were met. They are not timed tests; `tests/test_bench.py` runs
them at smoke sizes (`--quick`).

    python -m bench                  every benchmark, then the table
    python -m bench makespan polling only these
    python -m bench --quick          the smoke sizes (seconds each)
    python -m bench --table          the table of the results already written
"""
