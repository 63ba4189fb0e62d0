"""HTTP benchmark: gunicorn as `make serve` runs it vs Flask's development server (`flask --app app run`), in one run.

    .venv/bin/python -m bench.bench_http [--duration 10] [--repeats 3]       (`make bench-http`, from the repository)

Each repeat starts each server afresh on a free 127.0.0.1 port (time to /health 200), warms it up, then wrk (Debian's)
drives POST /predict with bench/post_bodies.lua: single tweets over 16 connections (three runs, their medians), then
1,000-tweet batches.
Memory is read from /proc after the load. Request bodies are synthetic tweets made here, never the corpus.
Both servers collect the /metrics numbers (the default); gunicorn runs a third time with METRICS=0, which turns
collection off, so the cost of metrics is measured: at most 10% of single-tweet requests/s (issue 14).
gunicorn's default run also answers single tweets with `"explain": true`, each run right after a plain one, so the cost
of an explanation is measured: its median latency at most 2× a plain request's (issue 14).
Then the accurate tier (models/accurate/, SENTIMENT_MODEL) behind gunicorn: single tweets over 8 connections, batches of 64.
Last, the ceiling: a Flask app answering every POST /predict with one constant prediction (bench/constant_app.py) under the
same gunicorn settings, single tweets as above; the service's requests/s are reported as a share of it (issue 24: at
least half), with p50/p99, how far the slowest of a start's three runs falls below their median, and how the
connections and the CPU spread over the workers in each run (connections counted from /proc halfway through a run).
Medians over the repeats go to tables on stdout and to bench-results/http.json.
"""
import argparse
import json
import threading
import random
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import ROOT, Server, dev_server_command, gunicorn_command, start_server
from sentiment_nb.accurate import ACCURATE_MODEL

LUA = ROOT / "bench" / "post_bodies.lua"
SERVERS = {"gunicorn": gunicorn_command, "flask dev server": dev_server_command}
CONSTANT = "constant response"  # the ceiling: gunicorn_command's settings, a constant answer


def constant_command() -> list[str]:
    return [*gunicorn_command()[:-1], "bench.constant_app:create_app()"]
SINGLE_CONNECTIONS, BATCH_CONNECTIONS, BATCH_SIZE = 16, 4, 1_000
SINGLE_RUNS = 3  # wrk runs of single tweets per server start
ACCURATE_SINGLE_CONNECTIONS, ACCURATE_BATCH_CONNECTIONS, ACCURATE_BATCH_SIZE = 8, 2, 64


def synthetic_tweets(n: int, seed: int = 0) -> list[str]:
    """Tweet-like texts from templates: mentions, hashtags, emoji, URLs, elongations, typos."""
    rng = random.Random(seed)
    openers = ["omg", "ugh", "lol", "honestly", "so", "wow", "meh", "yay", "hmm", "finally"]
    subjects = ["my phone", "the new album", "this traffic", "monday mornings", "the pizza place downtown", "my flight",
                "the season finale", "our team", "the weather", "this coffee", "the update", "my landlord"]
    verdicts = ["is amazing", "is the worst", "is ok i guess", "made my day", "ruined everything", "starts at 8pm",
                "is sooooo good", "keeps crashing", "was cancelled again", "is on sale till friday", "totally rocks",
                "is kinda boring"]
    extras = ["#blessed", "#fail", "#mondaymotivation", "@friend", "@support", "http://example.com/x1", ":)", ":(",
              "😍", "😡", "🙄", "!!!", "...", "lmao", "smh", "#nowplaying"]
    return [" ".join([rng.choice(openers), rng.choice(subjects), rng.choice(verdicts), *rng.sample(extras, rng.randint(0, 3))])
            for _ in range(n)]


def write_bodies(folder: Path, batch_size: int = BATCH_SIZE) -> tuple[Path, Path]:
    """One JSON body per line: 500 single-tweet bodies, and 5 bodies of `batch_size` tweets."""
    single, batch = folder / "single.jsonl", folder / f"batch{batch_size}.jsonl"
    single.write_text("".join(json.dumps({"text": t}) + "\n" for t in synthetic_tweets(500)), encoding="utf-8")
    batch.write_text("".join(json.dumps({"texts": synthetic_tweets(batch_size, seed)}) + "\n" for seed in range(1, 6)),
                     encoding="utf-8")
    return single, batch


def write_explain_bodies(folder: Path) -> Path:
    """The same 500 single-tweet bodies as `write_bodies`, each asking for an explanation."""
    explain = folder / "single-explain.jsonl"
    explain.write_text("".join(json.dumps({"text": t, "explain": True}) + "\n" for t in synthetic_tweets(500)), encoding="utf-8")
    return explain


def run_wrk(url: str, bodies: Path, connections: int, seconds: int, workers: list[int] = ()) -> dict:
    """wrk's results as post_bodies.lua prints them (latencies in µs); with `workers`, also each one's established
    connections halfway through the run and the CPU seconds it used during it."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), url, "--", str(bodies)]
    cpu_before = [cpu_seconds(pid) for pid in workers]
    sample: list[int] = []
    timer = threading.Timer(seconds / 2, lambda: sample.extend(established(workers, int(url.rsplit(":", 1)[1].split("/")[0]))))
    timer.start()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    finally:
        timer.cancel()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if workers:
        result["connections"] = sample
        result["cpu_s"] = [cpu_seconds(pid) - before for pid, before in zip(workers, cpu_before)]
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def established(workers: list[int], port: int) -> list[int]:
    """How many established TCP connections on `port` each of `workers` holds (its socket inodes in /proc/net/tcp)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    def held(pid):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # the worker exited meanwhile
            return 0
        return sum(link[8:-1] in inodes for link in links if link.startswith("socket:["))
    return [held(pid) for pid in workers]


def process_memory_mb(pid: int) -> dict[str, float]:
    """Peak resident set (VmHWM) and proportional set size (PSS: shared pages split among sharers), in MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    pss_kb = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    return {"peak_rss": int(status["VmHWM"].split()[0]) / 1024, "pss": pss_kb / 1024}


def serving_processes(server: Server) -> list[int]:
    """gunicorn's workers, or the dev server's single process."""
    pid = server.process.pid
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return children or [pid]


def measure_once(name: str, bodies: tuple[Path, Path], seconds: int, log_dir: Path, env: dict | None = None,
                 connections: tuple[int, int] = (SINGLE_CONNECTIONS, BATCH_CONNECTIONS), batch_size: int = BATCH_SIZE,
                 explain_bodies: Path | None = None) -> dict:
    command = {**SERVERS, CONSTANT: constant_command}.get(name, gunicorn_command)()
    server = start_server(command, log_dir / f"{name.replace(' ', '-')}.log", env=env)
    try:
        url = server.url + "/predict"
        run_wrk(url, bodies[0], connections[0], 2)  # warm-up: connections, caches, branch predictors
        workers = serving_processes(server)
        singles, explained = [], []
        for _ in range(SINGLE_RUNS):  # explained single tweets interleaved with plain ones, on the same server
            singles.append(run_wrk(url, bodies[0], connections[0], seconds, workers))
            if explain_bodies: explained.append(run_wrk(url, explain_bodies, connections[0], seconds))
        batch = run_wrk(url, bodies[1], connections[1], seconds) if name != CONSTANT else None
        memory = [process_memory_mb(pid) for pid in serving_processes(server)]
    finally:
        server.stop()
    single = single_figures(singles)
    spread = {"runs_rps": [r["requests"] / (r["duration_us"] / 1e6) for r in singles],
              "runs_connections": [r["connections"] for r in singles], "runs_cpu_s": [r["cpu_s"] for r in singles]}
    if batch is None:
        return {"single_rps": single["rps"], "single_p50_ms": single["p50_ms"], "single_p99_ms": single["p99_ms"],
                "single_errors": single["errors"]} | spread
    return spread | {
        "single_rps": single["rps"], "single_p50_ms": single["p50_ms"], "single_p99_ms": single["p99_ms"],
        "single_errors": single["errors"],
        "batch_tweets_per_s": batch["requests"] * batch_size / (batch["duration_us"] / 1e6),
        "batch_p99_ms": batch["latency_us"]["p99"] / 1000,
        "batch_errors": sum(batch["errors"].values()),
        "peak_rss_mb_per_worker": max(m["peak_rss"] for m in memory),
        "pss_mb_per_worker": max(m["pss"] for m in memory),
        "processes": len(memory),
        "seconds_to_ready": server.seconds_to_ready,
    } | ({f"explain_{key}": value for key, value in single_figures(explained).items()} if explained else {})


def single_figures(runs: list[dict]) -> dict:
    """Medians over wrk runs of single tweets (errors: their sum). How one run's connections land on the workers moves
    its requests/s by up to 3x (bench/RESULTS.md), so one run per start would measure that, not the server."""
    def median(f): return statistics.median(f(run) for run in runs)
    return {"rps": median(lambda r: r["requests"] / (r["duration_us"] / 1e6)), "p50_ms": median(lambda r: r["latency_us"]["p50"] / 1000),
            "p99_ms": median(lambda r: r["latency_us"]["p99"] / 1000), "errors": sum(sum(r["errors"].values()) for r in runs)}


ROWS = [  # key, label, target, is the target met
    ("single_rps", "single tweet: requests/s (16 connections)", "≥ 1,000", lambda v: v >= 1000),
    ("single_p50_ms", "single tweet: p50 latency, ms", "", None),
    ("single_p99_ms", "single tweet: p99 latency, ms", "≤ 50", lambda v: v <= 50),
    ("single_errors", "single tweet: errors", "0", lambda v: v == 0),
    ("batch_tweets_per_s", "batch of 1,000: tweets/s (4 connections)", "≥ 20,000", lambda v: v >= 20_000),
    ("batch_p99_ms", "batch of 1,000: p99 latency, ms", "", None),
    ("batch_errors", "batch of 1,000: errors", "0", lambda v: v == 0),
    ("peak_rss_mb_per_worker", "peak RSS per worker, MB", "≤ 300", lambda v: v <= 300),
    ("pss_mb_per_worker", "PSS per worker (shared pages split), MB", "", None),
    ("processes", "serving processes", "", None),
    ("seconds_to_ready", "start to /health 200, s", "≤ 10", lambda v: v <= 10),
]


ACCURATE_ROWS = [
    ("single_rps", f"single tweet: requests/s ({ACCURATE_SINGLE_CONNECTIONS} connections)", "", None),
    ("single_p50_ms", "single tweet: p50 latency, ms", "", None),
    ("single_p99_ms", "single tweet: p99 latency, ms", "≤ 100", lambda v: v <= 100),
    ("single_errors", "single tweet: errors", "0", lambda v: v == 0),
    ("batch_tweets_per_s", f"batch of {ACCURATE_BATCH_SIZE}: tweets/s ({ACCURATE_BATCH_CONNECTIONS} connections)", "≥ 100", lambda v: v >= 100),
    ("batch_p99_ms", f"batch of {ACCURATE_BATCH_SIZE}: p99 latency, ms", "", None),
    ("batch_errors", f"batch of {ACCURATE_BATCH_SIZE}: errors", "0", lambda v: v == 0),
    ("peak_rss_mb_per_worker", "peak RSS per worker, MB", "≤ 600", lambda v: v <= 600),
    ("seconds_to_ready", "start to /health 200, s", "≤ 15", lambda v: v <= 15),
]


def accurate_table(medians: dict) -> str:
    lines = ["| metric | target | gunicorn, accurate tier | target met |", "|---|---|---:|---|"]
    for key, label, target, met in ACCURATE_ROWS:
        lines.append(f"| {label} | {target} | {medians[key]:,.1f} | {'' if met is None else ('yes' if met(medians[key]) else '**no**')} |")
    return "\n".join(lines)


METRICS_COST_LIMIT = 0.10  # of single-tweet requests/s
EXPLAIN_LATENCY_LIMIT = 2.0  # an explained single tweet's median latency, in plain requests' median latencies


def explain_cost_table(g: dict) -> str:
    """gunicorn's single tweets, plain and with `"explain": true`, over the same connections."""
    lines = ["| single tweet (16 connections) | plain | explain | explain ÷ plain | target met |", "|---|---:|---:|---:|---|"]
    for key, label, limit in [("p50_ms", "p50 latency, ms", EXPLAIN_LATENCY_LIMIT), ("p99_ms", "p99 latency, ms", None),
                              ("rps", "requests/s", None), ("errors", "errors", None)]:
        plain, explain = g[f"single_{key}"], g[f"explain_{key}"]
        ratio = explain / plain if plain else 0.0
        verdict = "" if limit is None else (f"yes (≤ {limit:g}×)" if ratio <= limit else f"**no** (> {limit:g}×)")
        lines.append(f"| {label} | {plain:,.2f} | {explain:,.2f} | {ratio:.2f}× | {verdict} |")
    return "\n".join(lines)


def metrics_cost_table(on: dict, off: dict) -> str:
    """gunicorn with /metrics collection (the default) against METRICS=0: what counting every request costs."""
    lines = ["| metric | /metrics on (default) | METRICS=0 | cost of metrics | target met |", "|---|---:|---:|---:|---|"]
    for key, label, limit in [("single_rps", "single tweet: requests/s (16 connections)", METRICS_COST_LIMIT),
                              ("batch_tweets_per_s", "batch of 1,000: tweets/s (4 connections)", None)]:
        cost = 1 - on[key] / off[key] if off[key] else 0.0
        verdict = "" if limit is None else (f"yes (≤ {limit:.0%})" if cost <= limit else f"**no** (> {limit:.0%})")
        lines.append(f"| {label} | {on[key]:,.1f} | {off[key]:,.1f} | {cost:.1%} | {verdict} |")
    return "\n".join(lines)


def ceiling_table(service: list[dict], ceiling: list[dict]) -> str:
    """The service's single tweets against the constant answer's, start by start, and how their runs spread."""
    def median(runs, key): return statistics.median(r[key] for r in runs)
    def slowest(runs): return min(min(r["runs_rps"]) / statistics.median(r["runs_rps"]) for r in runs)
    def spread(runs): return ", ".join("/".join(map(str, c)) for r in runs for c in r["runs_connections"])
    def busier(runs): return statistics.median(max(cpu) / sum(cpu) for r in runs for cpu in r["runs_cpu_s"] if sum(cpu))
    share = statistics.median(s["single_rps"] / c["single_rps"] for s, c in zip(service, ceiling))
    p99 = median(service, "single_p99_ms")
    rows = [("requests/s (median of each start's runs, then of the starts)", f"{median(service, 'single_rps'):,.0f}",
             f"{median(ceiling, 'single_rps'):,.0f}", f"{share:.2f}×", f"≥ {CEILING_SHARE:g}×", share >= CEILING_SHARE),
            ("p50 latency, ms", f"{median(service, 'single_p50_ms'):.1f}", f"{median(ceiling, 'single_p50_ms'):.1f}", "", "", None),
            ("p99 latency, ms", f"{p99:.1f}", f"{median(ceiling, 'single_p99_ms'):.1f}", "", f"≤ {P99_LIMIT_MS:g} ms", p99 <= P99_LIMIT_MS),
            ("slowest run ÷ the median of its start's runs, worst start", f"{slowest(service):.2f}", f"{slowest(ceiling):.2f}", "",
             f"≥ {SLOWEST_RUN_SHARE:g}", slowest(service) >= SLOWEST_RUN_SHARE),
            ("connections per worker, each run", spread(service), spread(ceiling), "", "", None),
            ("the busier worker's share of the CPU both used, median of runs", f"{busier(service):.0%}", f"{busier(ceiling):.0%}", "", "", None),
            ("errors", f"{sum(r['single_errors'] for r in service):.0f}", f"{sum(r['single_errors'] for r in ceiling):.0f}", "", "0",
             all(r["single_errors"] == 0 for r in service))]
    lines = ["| single tweets, 16 connections | service (fast model) | constant response | service ÷ constant | target |",
             "|---|---:|---:|---:|---|"]
    for label, ours, theirs, ratio, target, met in rows:
        lines.append(f"| {label} | {ours} | {theirs} | {ratio} | {target}{'' if met in (None, True) else ' (**missed**)'} |")
    return "\n".join(lines)


def table(medians: dict[str, dict]) -> str:
    g, d = medians["gunicorn"], medians["flask dev server"]
    lines = ["| metric | target | gunicorn | Flask dev server | gunicorn ÷ dev | target met |", "|---|---|---:|---:|---:|---|"]
    for key, label, target, met in ROWS:
        ratio = f"{g[key] / d[key]:.2f}×" if d[key] else "–"
        verdict = "" if met is None else ("yes" if met(g[key]) else "**no**")
        lines.append(f"| {label} | {target} | {g[key]:,.1f} | {d[key]:,.1f} | {ratio} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="fresh starts of each server; medians are reported")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make setup` installs it (Debian package wrk)")
    runs: dict[str, list[dict]] = {name: [] for name in [*SERVERS, METRICS_OFF, ACCURATE, CONSTANT]}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        bodies = write_bodies(Path(tmp))
        accurate_bodies = write_bodies(Path(tmp), ACCURATE_BATCH_SIZE)
        explain_bodies = write_explain_bodies(Path(tmp))
        for repeat in range(args.repeats):
            for name in SERVERS:  # interleaved, so drift in machine load hits both alike
                runs[name].append(measure_once(name, bodies, args.duration, Path(tmp),
                                               explain_bodies=explain_bodies if name == "gunicorn" else None))
                report(repeat, args.repeats, name, runs[name][-1])
            runs[METRICS_OFF].append(measure_once(METRICS_OFF, bodies, args.duration, Path(tmp), {"METRICS": "0"}))
            report(repeat, args.repeats, METRICS_OFF, runs[METRICS_OFF][-1])
            runs[ACCURATE].append(measure_once(ACCURATE, accurate_bodies, args.duration, Path(tmp), {"SENTIMENT_MODEL": str(ACCURATE_MODEL)},
                                               (ACCURATE_SINGLE_CONNECTIONS, ACCURATE_BATCH_CONNECTIONS), ACCURATE_BATCH_SIZE))
            report(repeat, args.repeats, ACCURATE, runs[ACCURATE][-1])
            runs[CONSTANT].append(measure_once(CONSTANT, bodies, args.duration, Path(tmp)))
            report(repeat, args.repeats, CONSTANT, runs[CONSTANT][-1])
    medians = {name: {key: statistics.median(run[key] for run in results) for key in results[0] if not key.startswith("runs_")}
               for name, results in runs.items()}
    out = ROOT / "bench-results" / "http.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"medians": medians, "runs": runs, "duration_s": args.duration,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2) + "\n", encoding="utf-8")
    print(f"\nSingle tweets against the ceiling: POST /predict on 127.0.0.1, wrk -t2, 16 connections, {args.duration:g} s per run, "
          f"{SINGLE_RUNS} runs per start, {args.repeats} fresh starts of each server in turn\n")
    print(ceiling_table(runs["gunicorn"], runs[CONSTANT]))
    print(f"\nPOST /predict on 127.0.0.1, wrk -t2, {args.duration:g} s per run, median of {args.repeats} fresh starts\n")
    print(table(medians))
    print("\nThe cost of /metrics: gunicorn as above, and again with METRICS=0 (no collection), same runs\n")
    print(metrics_cost_table(medians["gunicorn"], medians[METRICS_OFF]))
    print("\nThe cost of an explanation: gunicorn's single tweets as above, and again with \"explain\": true, same runs\n")
    print(explain_cost_table(medians["gunicorn"]))
    print(f"\nThe accurate tier (SENTIMENT_MODEL={ACCURATE_MODEL.relative_to(ROOT)}) behind gunicorn, same runs\n")
    print(accurate_table(medians[ACCURATE]))


ACCURATE = "gunicorn, accurate tier"
CEILING_SHARE, P99_LIMIT_MS, SLOWEST_RUN_SHARE = 0.5, 25.0, 0.8  # issue 24's targets for single tweets
METRICS_OFF = "gunicorn, METRICS=0"


def report(repeat: int, repeats: int, name: str, run: dict) -> None:
    batch = f", {run['batch_tweets_per_s']:,.0f} tweets/s" if "batch_tweets_per_s" in run else ""
    print(f"repeat {repeat + 1}/{repeats} {name}: {run['single_rps']:,.0f} req/s{batch}, connections per worker "
          f"{' '.join('/'.join(map(str, c)) for c in run['runs_connections'])}", file=sys.stderr)


if __name__ == "__main__":
    main()
