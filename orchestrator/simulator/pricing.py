"""What a separation costs, and the answer of `POST /projects/quote`. Pure, no HTTP.

A separation (a re-separation, or a new project's first) costs the profile's
`credits_per_minute` per started minute of song, times its model's `credit_multipliers`
factor, and at least one credit. The quote answers what a separation with that model of
a song of that length would cost now, against the current balance; it charges nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.simulator.errors import issue, validation
from orchestrator.simulator.models import MODELS
from orchestrator.simulator.profile import Profile

MAX_QUOTE_SECONDS = 1200


def quote(
    profile: Profile,
    balance: int,
    model: Any,
    duration: Any,
    file_seconds: Callable[[], float] | None,
) -> dict[str, Any]:
    """The quote of one separation with `model`, or a 422 problem listing the bad fields.

    The duration is the uploaded file's (`file_seconds`, when the request named an
    `inputFileId`; it raises the problem of a file that cannot be priced) or else
    `durationSeconds`, in (0, 1200]; one of the two is required.
    """
    problems = []
    if not isinstance(model, str) or model not in MODELS:
        problems.append(issue("splitModel", f"must be one of: {', '.join(MODELS)}"))
    if file_seconds is not None:
        duration = file_seconds()
    elif duration is None:
        problems.append(
            issue("durationSeconds", "give durationSeconds or the inputFileId of an upload")
        )
    elif (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not 0 < duration <= MAX_QUOTE_SECONDS
    ):
        problems.append(
            issue("durationSeconds", f"must be a number of seconds in (0, {MAX_QUOTE_SECONDS}]")
        )
    if problems:
        raise validation("the quote request has invalid fields; see issues", problems)
    cost = profile.separation_cost(float(duration), model)
    return {
        "creditsRequired": cost,
        "availableBalance": balance,
        "sufficientBalance": balance >= cost,
        "durationSeconds": duration,
        "breakdown": {"split": cost, "sync": 0},
    }
