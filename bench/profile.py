"""Where the time goes: py-spy samples a real gunicorn worker under load, or `predict_pipeline` on words it has not seen.

    .venv/bin/python -m bench.profile http [--seconds 10]        (`make profile`: both, recorded in bench/RESULTS.md)
    .venv/bin/python -m bench.profile pipeline [--seconds 10]

http: gunicorn as `make serve` runs it on a free 127.0.0.1 port, the fast model, wrk POSTing single tweets over 16
connections (bench/post_bodies.lua, our synthetic tweets); py-spy records the master and its workers meanwhile.
pipeline: a process that loads the shipped model, warms it up on 10,000 hold-out tweets and then calls `predict_pipeline`
on batches of 64 other ones, each with a word made up for it (our synthetic tweets where the corpus is absent); only
the calls are sampled, not the loading.
Each prints a Markdown table of the functions with the most samples (of the thread holding the GIL, so: where Python
spends CPU): samples in the function itself (self) and
with it on the stack (total), as shares of all samples. Bounded: each part stops after its seconds.
"""
import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import BIN, ROOT, gunicorn_command, start_server

TOP = 15
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy(pid_or_command: list[str], seconds: int, out: Path) -> None:
    """py-spy's raw (collapsed-stack) samples of a process (`["--pid", pid]`) or of a command it starts, into `out`."""
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: `make setup` installs the dev extra, which has it")
    command = [spy, "record", "--gil", "--format", "raw", "--rate", "250", "--duration", str(seconds), "--output", str(out),
               "--nonblocking", *pid_or_command]
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 120)


def where(frame: str) -> tuple[str, str]:
    """(function, file shortened to what says where it is) of one py-spy frame."""
    m = FRAME.match(frame)
    if not m:
        return frame, ""
    path = m["file"]
    for marker in ("site-packages/", "lib/python3", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return m["function"], path


def top_table(collapsed: Path, top: int = TOP) -> str:
    """The `top` functions by self samples, with their total share, from py-spy's raw output."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [where(f) for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    lines = [f"{total:,} samples\n", "| function | where | self | total |", "|---|---|---:|---:|"]
    for (function, path), n in own.most_common(top):
        lines.append(f"| `{function}` | {path} | {n / total:.1%} | {inclusive[(function, path)] / total:.1%} |")
    return "\n".join(lines)


def profile_http(seconds: int) -> str:
    from bench.bench_http import LUA, write_bodies

    with tempfile.TemporaryDirectory(prefix="profile-http-") as tmp:
        single, _ = write_bodies(Path(tmp))
        server = start_server(gunicorn_command(), Path(tmp) / "server.log")
        try:
            wrk = ["wrk", "-t2", "-c16", f"-d{seconds + 4}s", "--timeout", "10s", "-s", str(LUA), server.url + "/predict", "--", str(single)]
            load = subprocess.Popen(wrk, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                py_spy(["--subprocesses", "--pid", str(server.process.pid)], seconds, Path(tmp) / "samples.txt")
            finally:
                load.wait(timeout=seconds + 60)
        finally:
            server.stop()
        return top_table(Path(tmp) / "samples.txt")


PIPELINE_LOAD = """
import random, sys, time
from sentiment_nb.pipeline import load_pipeline, predict_pipeline
from bench.bench_http import synthetic_tweets
try:
    from sentiment_nb.data import load_semeval, semeval_path, temporal_split
    later = temporal_split(load_semeval(semeval_path()))[1].text.sample(frac=1, random_state=24).tolist()
except FileNotFoundError:
    later = synthetic_tweets(20_000, seed=24)
model = load_pipeline()
predict_pipeline(later[:10_000], model)
rng = random.Random(0)
tweets = [f"{t} {''.join(rng.choices('abcdefghijklmnopqrstuvwxyz', k=8))}" for t in later[10_000:] * 10]
print("ready", flush=True)
deadline = time.monotonic() + float(sys.argv[1])
for start in range(0, len(tweets), 64):
    if time.monotonic() > deadline: break
    predict_pipeline(tweets[start:start + 64], model)
"""


def profile_pipeline(seconds: int) -> str:
    with tempfile.TemporaryDirectory(prefix="profile-pipeline-") as tmp:
        child = subprocess.Popen([str(BIN / "python"), "-c", PIPELINE_LOAD, str(seconds + 30)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            if child.stdout.readline().strip() != "ready":
                sys.exit("the profiled process did not start")
            py_spy(["--pid", str(child.pid)], seconds, Path(tmp) / "samples.txt")  # once warmed up: loading is not sampled
        finally:
            child.kill()
            child.wait()
        return top_table(Path(tmp) / "samples.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["http", "pipeline", "both"])
    parser.add_argument("--seconds", type=int, default=10, help="seconds of samples")
    args = parser.parse_args()
    if args.what in ("http", "both"):
        print(f"gunicorn (`make serve`'s settings), POST /predict single tweets, wrk 16 connections, {args.seconds} s of samples "
              "of the master and its workers\n")
        print(top_table_or_exit(lambda: profile_http(args.seconds)))
    if args.what in ("pipeline", "both"):
        print(f"\n`predict_pipeline`, batches of 64 hold-out tweets each with a new word, after 10,000 others, "
              f"{args.seconds} s of samples\n")
        print(top_table_or_exit(lambda: profile_pipeline(args.seconds)))


def top_table_or_exit(make) -> str:
    try:
        return make()
    except subprocess.CalledProcessError as err:
        sys.exit(f"py-spy failed ({err.returncode}): {err.stderr.decode(errors='replace')[-500:]}")


if __name__ == "__main__":
    main()
