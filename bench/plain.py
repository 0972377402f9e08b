"""A plain concurrent re-separation script, of the kind a user writes: the comparison client.

    YOUKA_API_KEY=yk_... python bench/plain.py API_URL OUT_DIR --jobs JOBS_FILE \
        [--in-flight 100] [--poll 1.0]

JOBS_FILE has one `project model` pair a line. At most `--in-flight` jobs at once (a
semaphore); each POSTs the separation, polls `GET /tasks/{id}` every `--poll` seconds until
it ends, reads the project and downloads that model's stems (every type but `original`) to
OUT_DIR/{model}/{project}/{type}.wav. No state, no idempotency key, no pacing: the only
retry is after a 429 (the one refusal a busy API answers to a correct request), after its
`Retry-After` or 1 s. Prints one JSON line: jobs, done, failed, wall seconds.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

TERMINAL = {"completed", "finalized", "failed", "cancelled", "timed-out"}


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    """One API call; after a 429, wait and send it again."""
    while True:
        async with session.request(method, url, **kw) as response:
            if response.status == 429:
                await asyncio.sleep(float(response.headers.get("Retry-After", 1)))
                continue
            response.raise_for_status()
            return await response.json()


async def job(
    api: aiohttp.ClientSession, files: aiohttp.ClientSession, args: Any, project: str, model: str
) -> bool:
    """Separate `project` with `model`, wait for it, download its stems; True when done."""
    base = args.api_url
    body = {"splitModel": model}
    task = await call(api, "POST", f"{base}/projects/{project}/tasks/stem-separation", json=body)
    while True:
        await asyncio.sleep(args.poll)
        status = (await call(api, "GET", f"{base}/tasks/{task['taskId']}"))["status"]
        if status in TERMINAL:
            break
    if status not in ("completed", "finalized"):
        print(f"{project} {model}: {status}", file=sys.stderr)
        return False
    stems = (await call(api, "GET", f"{base}/projects/{project}"))["stems"]
    folder = args.out_dir / model / project
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        if stem["model"] == model and stem["type"] != "original":
            # The stem URL may be on another host: no Authorization header on this session.
            async with files.get(stem["url"]) as response:
                response.raise_for_status()
                (folder / f"{stem['type']}.wav").write_bytes(await response.read())
    return True


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("api_url")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--jobs", type=Path, required=True, help="`project model` per line")
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    args = parser.parse_args()
    pairs = [line.split() for line in args.jobs.read_text().splitlines() if line.strip()]
    headers = {"Authorization": f"Bearer {os.environ['YOUKA_API_KEY']}"}
    semaphore = asyncio.Semaphore(args.in_flight)
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=headers) as api, aiohttp.ClientSession() as files:

        async def limited(project: str, model: str) -> bool:
            async with semaphore:
                return await job(api, files, args, project, model)

        results = await asyncio.gather(*(limited(p, m) for p, m in pairs))
    done = sum(results)
    wall = time.monotonic() - started
    summary = {"jobs": len(pairs), "done": done, "failed": len(pairs) - done, "wall_seconds": wall}
    print(json.dumps(summary))
    return 0 if done == len(pairs) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
