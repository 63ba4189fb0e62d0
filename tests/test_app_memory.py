"""A worker's memory stays bounded however many new words it meets: real gunicorn, one worker, a stream of made-up words.

Only growth is checked: a worker's size is set by the libraries and models it loads, not by the traffic."""
import random
import string
from pathlib import Path

import pytest
import requests

from tests.support import children_of, gunicorn_command, start_server, wait_until

pytestmark = pytest.mark.timeout(600)

WORDS, PER_TEXT, PER_REQUEST = 200_000, 25, 1_000  # 8 requests of 1,000 texts of 25 words, each word new
LAST = 50_000  # over the last this many words, a worker's memory must not grow
MAX_GROWTH_MB = 2.0  # an unbounded lemma cache grew 6.6 MB over them; the bounded one 0.0


def made_up_words(n: int, seed: int = 0) -> list[str]:
    """`n` distinct lower-case strings of 6 to 12 letters, as many a server meets: names, typos, hashtags."""
    rng, words = random.Random(seed), set()
    while len(words) < n:
        words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 12))))
    return sorted(words, key=lambda _: rng.random())


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_a_worker_meeting_200_000_new_words_stops_growing(served_model_path, tmp_path):
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path), "WEB_CONCURRENCY": "1"})
    try:
        wait_until(lambda: len(children_of(server.process.pid)) == 1, what="the worker")
        (worker,) = children_of(server.process.pid)
        words, rss = made_up_words(WORDS), {}
        with requests.Session() as session:
            for start in range(0, WORDS, PER_TEXT * PER_REQUEST):
                chunk = words[start:start + PER_TEXT * PER_REQUEST]
                texts = [" ".join(chunk[i:i + PER_TEXT]) for i in range(0, len(chunk), PER_TEXT)]
                response = session.post(server.url + "/predict", json={"texts": texts}, timeout=120)
                assert response.status_code == 200, response.text[:300]
                rss[start + len(chunk)] = rss_mb(worker)
        assert children_of(server.process.pid) == [worker], "the worker was replaced: its memory was not measured throughout"
        before_last = rss[WORDS - LAST]
        assert rss[WORDS] - before_last <= MAX_GROWTH_MB, f"grew {rss[WORDS] - before_last:.1f} MB over the last {LAST:,} words: {rss}"
    finally:
        server.stop()
