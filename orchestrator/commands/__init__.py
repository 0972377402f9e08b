"""The commands of `stemsweep`, a module per group; `orchestrator.cli` gathers them.

    common.py  what the commands share: exit codes, errors turned into a message and an
               exit code (`friendly`), the options of the commands that read a manifest,
               the in-process simulator a manifest may ask for
    sweep.py   `run` and `retry`: a sweep, its live display, its summary and exit code
    plan.py    `plan` and `status`: what the state says a run would do, or has done
    tools.py   `models`, `report` and `simulate`: the catalogue, the comparison, the local API

Every command is a few lines over the library: it parses its arguments, calls one library
function and answers with one document (`views.py`), as text or, under `--json`, as one
JSON envelope (`output.py`). Library imports are made inside the commands, so that
`stemsweep --help` and the core commands load no optional part (`extras.py`).
"""
