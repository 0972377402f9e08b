"""Where a run's API is, and the key it sends (pure: reads only the mapping it is given).

The key comes from one environment variable, `YOUKA_API_KEY`, and from nowhere else: not
from a file, not from the manifest; it is never stored and never logged. `require_key` is
its one check: a key that is missing or blank is a `CredentialsError` that names the
variable and says what to do. (A key the API refuses is found by `GET /me`, in `runner`.)

The URL is the manifest's `api.base_url`, overridden by `YOUKA_API_URL`, overridden by
`--api-url`. A manifest with `api.simulator` needs neither: the in-process simulator
says where it is and which key it takes.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.errors import CredentialsError
from orchestrator.spec import Manifest

ENV_API_KEY = "YOUKA_API_KEY"
ENV_API_URL = "YOUKA_API_URL"


def require_key(key: str | None) -> str:
    """`key`, when it is a usable API key; `CredentialsError` when missing or blank."""
    if key is None:
        raise CredentialsError(
            f"{ENV_API_KEY} is not set: export {ENV_API_KEY}=yk_... (your Youka API key), "
            "or run against the simulator (api.simulator in the manifest)"
        )
    if not key.strip():
        raise CredentialsError(f"{ENV_API_KEY} is empty: set it to your Youka API key")
    return key


def resolve_connection(
    manifest: Manifest, environ: Mapping[str, str], api_url: str | None
) -> tuple[str, str | None]:
    """The API base URL and key of a run; (``""``, None) when it uses the simulator.

    Raises `CredentialsError` (see `require_key`) when the run needs a key and has none.
    """
    if manifest.api.simulator is not None:
        return "", None
    key = require_key(environ.get(ENV_API_KEY))
    return api_url or environ.get(ENV_API_URL) or manifest.api.base_url, key
