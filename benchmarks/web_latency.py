"""Time from webhook to reply on the web channel: median and p95 over N messages.

Starts the gateway in this process on 127.0.0.1 with a fresh SQLite database (the embedded mode),
posts N questions from the held-out sets one after another, and prints the figures.

    .venv/bin/python -m benchmarks.web_latency [--messages 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from helpline.assistant import Assistant
from helpline.logs import quiet_libraries
from helpline.paths import ProjectPaths
from tests.gateway_helpers import gateway


def questions(paths: ProjectPaths, count: int) -> list:
    texts = []
    for lang in ("zh", "vi"):
        data = yaml.safe_load((paths.eval_data / f"heldout_{lang}.yml").read_text(encoding="utf-8"))
        texts += [str(q) for qs in data.values() for q in qs]
    return [texts[i * len(texts) // count] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    quiet_libraries()
    paths = ProjectPaths()
    assistant = Assistant.load(paths)
    timings = []
    with tempfile.TemporaryDirectory() as folder, gateway(assistant, Path(folder), rate_limit=10_000) as client:
        for number, text in enumerate(questions(paths, args.messages)):
            body = {"sender": f"bench{number % 50:04d}worker0000", "message_id": f"b{number}", "text": text}
            started = time.perf_counter()
            response = client.post("/webhooks/web", json=body)
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    timings.sort()
    print(f"web channel, webhook to reply, {len(timings)} messages (embedded mode, SQLite):")
    print(f"  median {statistics.median(timings):.1f} ms, p95 {timings[int(len(timings) * 0.95) - 1]:.1f} ms, "
          f"max {timings[-1]:.1f} ms")


if __name__ == "__main__":
    main()
