"""Soak and fault test: sustained load, a worker SIGKILLed under load, SIGTERM under load; every request accounted for.

    .venv/bin/python -m bench.soak [--target local|docker] [--duration 60] [--fault-duration 20] [--connections 32]
    make soak          gunicorn as `make serve` runs it, on a free 127.0.0.1 port
    make soak-docker   the Docker image, run read-only and non-root with host networking on 127.0.0.1
                       (starts its own dockerd when none answers and stops it afterwards, as `make docker-test` does)

One service is started, warmed up and then driven by `--connections` keep-alive clients (Python threads with
http.client) POSTing /predict: 7 in 8 requests carry one synthetic tweet, 1 in 8 a batch of 16. Each request's
outcome is checked (status 200, one prediction per text, each echoing its text, labels from the model) and timed.
Phases, one after the other on the same service:

1. sustained load for `--duration` s: no request may fail;
2. `--fault-duration` s of load with the busiest worker (most client connections) SIGKILLed a third of the way in:
   at most 1% of requests fail, gunicorn replaces the worker within 10 s, and throughput (1 s windows) is back to
   75% of its pre-kill median within 10 s. Clients reconnect after `--requests-per-connection` requests, as a proxy
   in front of gunicorn does; with connections that never close, the survivor keeps them all and the new worker idles;
3. `--fault-duration` s of load with SIGTERM to gunicorn (`docker kill --signal TERM` for the container) halfway:
   clients stop sending at the signal, every request sent before it is answered, and the process exits 0 within 2 s;
4. the same SIGTERM phase on a second service that serves the accurate tier (models/accurate/pipeline.pkl), whose
   ONNX Runtime sessions must not hold its workers back on their way out.

Traffic goes to 127.0.0.1 only; every phase is bounded in time. Prints a table, writes bench-results/soak-TARGET.json
and exits 1 when a criterion is missed. Figures measured on a shared machine are indicative; the criteria are not.
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.bench_http import synthetic_tweets
from tests.support import ROOT, Server, children_of, client_connections, free_port, get_status, gunicorn_command, start_server, uid_of

REQUEST_TIMEOUT_S = 10
BATCH_EVERY, BATCH_SIZE = 8, 16
MAX_KILL_FAILURE_RATIO = 0.01
RECOVERY_SHARE, RECOVERY_LIMIT_S, REPLACEMENT_LIMIT_S = 0.75, 10.0, 10.0
EXIT_LIMIT_S = 40  # gunicorn's graceful timeout (30 s) and some: how long a SIGTERM phase waits for the exit at most
STOP_LIMIT_S = 2.0  # within which the service must have exited, whichever model it serves
ACCURATE_MODEL = "models/accurate/pipeline.pkl"  # relative to the project, where gunicorn runs, and to the image's working directory
DOCKER_LABEL = "sentiment-nb-soak"  # every container started here carries it, so leftovers can be found and removed


# ---- the load ----

@dataclass(frozen=True)
class Body:
    data: bytes
    texts: list[str]
    batch: bool


def request_bodies(n: int = 400) -> list[Body]:
    """Synthetic tweets (never the corpus), one per body, with every BATCH_EVERY-th body a batch."""
    tweets = synthetic_tweets(n * BATCH_SIZE, seed=7)
    bodies = []
    for i in range(n):
        if i % BATCH_EVERY == BATCH_EVERY - 1:
            texts = tweets[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
            bodies.append(Body(json.dumps({"texts": texts}).encode(), texts, True))
        else:
            bodies.append(Body(json.dumps({"text": tweets[i]}).encode(), [tweets[i]], False))
    return bodies


def answer_problem(status: int, data: bytes, body: Body, labels: set[str]) -> str | None:
    """None if the answer is the full, right one for `body`, else what is wrong with it."""
    if status != 200:
        return f"HTTP {status}"
    try:
        answer = json.loads(data)
        predictions = answer["predictions"] if body.batch else [answer]
    except (ValueError, KeyError, TypeError):
        return "unreadable answer"
    if [p.get("text") for p in predictions] != body.texts or not all(p.get("label") in labels for p in predictions):
        return "wrong answer"
    return None


@dataclass
class Outcome:
    started: float  # time.perf_counter() when the request was sent
    seconds: float
    problem: str | None  # None: answered in full

    @property
    def finished(self) -> float:
        return self.started + self.seconds


class Load:
    """`connections` keep-alive clients POSTing /predict back to back until stopped; every outcome is kept."""

    def __init__(self, port: int, bodies: list[Body], labels: set[str], connections: int, requests_per_connection: int):
        self.port, self.bodies, self.labels = port, bodies, labels
        self.requests_per_connection = requests_per_connection or float("inf")
        self.stopping = threading.Event()
        self.outcomes: list[list[Outcome]] = [[] for _ in range(connections)]
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(connections)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(REQUEST_TIMEOUT_S + 5)

    def client(self, index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        record = self.outcomes[index].append
        i = index * 37  # clients start at different bodies
        on_this_connection = 0
        while not self.stopping.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += 1
            if on_this_connection >= self.requests_per_connection:
                connection.close()  # reopened by the next request, possibly to another worker
                on_this_connection = 0
            on_this_connection += 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body.data, {"Content-Type": "application/json"})
                response = connection.getresponse()
                problem = answer_problem(response.status, response.read(), body, self.labels)
            except (OSError, http.client.HTTPException) as err:
                problem = type(err).__name__
                connection.close()  # the next request opens a new connection
                on_this_connection = 0
            record(Outcome(started, time.perf_counter() - started, problem))
        connection.close()

    def all_outcomes(self) -> list[Outcome]:
        return sorted((o for outcomes in self.outcomes for o in outcomes), key=lambda o: o.started)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def throughput_windows(outcomes: list[Outcome], start: float, end: float, width: float = 1.0) -> list[tuple[float, float]]:
    """(window start, answered requests per second) for sliding windows of `width` s, every 0.25 s."""
    finished = sorted(o.finished for o in outcomes if o.problem is None)
    windows, t, lo = [], start, 0
    while t + width <= end:
        while lo < len(finished) and finished[lo] < t:
            lo += 1
        hi = lo
        while hi < len(finished) and finished[hi] < t + width:
            hi += 1
        windows.append((t, (hi - lo) / width))
        t += 0.25
    return windows


def summarize(outcomes: list[Outcome], seconds: float) -> dict:
    problems: dict[str, int] = {}
    for o in outcomes:
        if o.problem:
            problems[o.problem] = problems.get(o.problem, 0) + 1
    latencies_ms = [o.seconds * 1000 for o in outcomes if o.problem is None]
    return {"requests": len(outcomes), "seconds": round(seconds, 1), "failed": sum(problems.values()), "problems": problems,
            "requests_per_s": round(len(latencies_ms) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(percentile(latencies_ms, 0.50), 1), "p99_ms": round(percentile(latencies_ms, 0.99), 1)}


# ---- the services ----

class LocalService:
    """gunicorn as `make serve` runs it, on a free loopback port; `model`: SENTIMENT_MODEL (default: the shipped model)."""
    name = "gunicorn on 127.0.0.1"

    def __init__(self, log_dir: Path, model: str | None = None):
        self.server: Server = start_server(gunicorn_command(), log_dir / f"soak-gunicorn{'-accurate' if model else ''}.log",
                                           env={"SENTIMENT_MODEL": model} if model else None)
        self.port = int(self.server.url.rsplit(":", 1)[1])
        self.master_pid = self.server.process.pid

    def terminate(self) -> None:
        self.server.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self) -> str:
        return self.server.log()[-3000:]

    def close(self) -> None:
        self.server.stop()


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def remove_soak_containers() -> None:
    ids = docker("ps", "--all", "--quiet", "--filter", f"label={DOCKER_LABEL}", check=False).split()
    if ids:
        docker("rm", "--force", "--volumes", *ids, check=False)


class DockerService:
    """The image run as production should run it: read-only root filesystem with a tmpfs /tmp, no capabilities,
    no privilege escalation, the image's non-root user; host networking bound to 127.0.0.1."""
    name = "Docker container on 127.0.0.1"

    def __init__(self, image: str, model: str | None = None, ready_timeout: float = 60):
        self.port = free_port()
        self.id = docker("run", "--detach", "--label", DOCKER_LABEL, "--network", "host",
                         "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                         "--env", "HOST=127.0.0.1", "--env", f"PORT={self.port}", *(["--env", f"SENTIMENT_MODEL={model}"] if model else []),
                         image)
        deadline = time.monotonic() + ready_timeout
        while get_status(f"http://127.0.0.1:{self.port}/health", timeout=1) != 200:
            if time.monotonic() > deadline or docker("inspect", "--format", "{{.State.Running}}", self.id) != "true":
                raise RuntimeError(f"container not ready within {ready_timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)
        self.master_pid = int(docker("inspect", "--format", "{{.State.Pid}}", self.id))

    def terminate(self) -> None:
        docker("kill", "--signal", "TERM", self.id)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return int(docker("wait", self.id, timeout=timeout))
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self) -> str:
        done = subprocess.run(["docker", "logs", "--tail", "30", self.id], capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr

    def confinement(self) -> dict:
        """How the container runs, checked from outside and from inside."""
        host_config = json.loads(docker("inspect", "--format", "{{json .HostConfig}}", self.id))
        processes = [self.master_pid, *children_of(self.master_pid)]
        try_writes = ("import sys\n"
                      "for d in sys.argv[1:]:\n"
                      "    try: open(d + '/.soak-write-test', 'w').close(); print(d, 'writable')\n"
                      "    except OSError as e: print(d, e.strerror)\n")
        writes = docker("exec", self.id, "python", "-c", try_writes, "/", "/srv/sentiment-nb", "/srv/sentiment-nb/models",
                        "/opt/venv", "/usr/local/share/nltk_data", "/tmp").splitlines()
        return {"read_only_root": host_config["ReadonlyRootfs"], "cap_drop": host_config["CapDrop"],
                "process_uids": sorted({uid_of(pid) for pid in processes}),
                "writable": sorted(line.rsplit(" ", 1)[0] for line in writes if line.endswith(" writable")),
                "write_attempts": writes}

    def close(self) -> None:
        docker("rm", "--force", "--volumes", self.id, check=False)


# ---- the phases ----

def model_labels(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=REQUEST_TIMEOUT_S) as response:
        return set(json.loads(response.read())["labels"])


def sustained(service, new_load, seconds: float) -> dict:
    with new_load() as load:
        began = time.perf_counter()
        time.sleep(seconds)
    return summarize(load.all_outcomes(), time.perf_counter() - began)


def wait_for_replacement(master: int, killed: int, workers: int, limit: float) -> float | None:
    """Seconds until the master has `workers` live workers again, none of them `killed`; None if not within `limit`."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        children = children_of(master)
        if killed not in children and len(children) == workers:
            return time.perf_counter() - began
        time.sleep(0.02)
    return None


def worker_kill(service, new_load, seconds: float) -> dict:
    workers = children_of(service.master_pid)
    with new_load() as load:
        began = time.perf_counter()
        time.sleep(seconds / 3)
        held = {pid: client_connections(pid, service.port) for pid in workers}
        victim = max(workers, key=held.get)  # the busiest worker: killing an idle one would prove little
        killed_at = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        replaced_s = wait_for_replacement(service.master_pid, victim, len(workers), REPLACEMENT_LIMIT_S)
        time.sleep(max(0.0, began + seconds - time.perf_counter()))
    ended = time.perf_counter()
    outcomes = load.all_outcomes()
    result = summarize(outcomes, ended - began)
    before = [rate for t, rate in throughput_windows(outcomes, began + 1, killed_at)]  # the first second warms up
    baseline = statistics.median(before) if before else 0.0
    after = throughput_windows(outcomes, killed_at, ended)
    recovered = next((t - killed_at for t, rate in after if rate >= RECOVERY_SHARE * baseline), None)
    result.update(killed_pid=victim, connections_per_worker=list(held.values()), workers=len(workers),
                  replaced_after_s=rounded(replaced_s), recovered_after_s=rounded(recovered),
                  baseline_requests_per_s=round(baseline, 1),
                  lowest_after_kill_requests_per_s=min((r for _, r in after), default=0.0),
                  failure_ratio=result["failed"] / max(1, result["requests"]))
    return result


def rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def sigterm(service, new_load, seconds: float) -> dict:
    with new_load() as load:
        began = time.perf_counter()
        time.sleep(seconds / 2)
        load.stopping.set()  # as a load balancer would: nothing new is sent once the service is told to stop
        signalled = time.perf_counter()
        service.terminate()
    exit_code = service.wait_exit(EXIT_LIMIT_S)
    exited_s = time.perf_counter() - signalled
    outcomes = load.all_outcomes()
    in_flight = [o for o in outcomes if o.started < signalled]
    result = summarize(in_flight, signalled - began)
    result.update(exit_code=exit_code, exited_after_s=round(exited_s, 2),
                  in_flight_at_signal=sum(1 for o in in_flight if o.finished > signalled),
                  sent_after_signal=len(outcomes) - len(in_flight))
    return result


# ---- report ----

def sigterm_verdicts(t: dict, tier: str) -> list[tuple[str, bool]]:
    return [(f"SIGTERM, {tier} model: every request sent before the signal answered ({t['failed']} failed of {t['requests']})",
             t["failed"] == 0),
            (f"SIGTERM, {tier} model: exit code 0 within {STOP_LIMIT_S:g} s (exit {t['exit_code']} after {t['exited_after_s']} s)",
             t["exit_code"] == 0 and t["exited_after_s"] <= STOP_LIMIT_S)]


def verdicts(phases: dict) -> list[tuple[str, bool]]:
    s, k = phases["sustained"], phases["worker_kill"]
    return [
        (f"sustained load: no failed request ({s['failed']} of {s['requests']})", s["failed"] == 0),
        (f"worker SIGKILL: failed requests ≤ {MAX_KILL_FAILURE_RATIO:.0%} ({k['failure_ratio']:.2%})",
         k["failure_ratio"] <= MAX_KILL_FAILURE_RATIO),
        (f"worker SIGKILL: replaced within {REPLACEMENT_LIMIT_S:g} s ({k['replaced_after_s']} s)",
         k["replaced_after_s"] is not None),
        (f"worker SIGKILL: throughput back to {RECOVERY_SHARE:.0%} of before within {RECOVERY_LIMIT_S:g} s "
         f"({k['recovered_after_s']} s)", k["recovered_after_s"] is not None and k["recovered_after_s"] <= RECOVERY_LIMIT_S),
        *sigterm_verdicts(phases["sigterm"], "fast"), *sigterm_verdicts(phases["sigterm_accurate"], "accurate"),
    ]


def kill_notes(k: dict) -> str:
    return (f"it held {max(k['connections_per_worker'])} of {sum(k['connections_per_worker'])} connections; "
            f"replaced after {k['replaced_after_s']} s; 1 s throughput before {k['baseline_requests_per_s']:,.0f}/s, "
            f"lowest after {k['lowest_after_kill_requests_per_s']:,.0f}/s, "
            f"≥ {RECOVERY_SHARE:.0%} again after {k['recovered_after_s']} s")


def sigterm_notes(t: dict) -> str:
    return f"{t['in_flight_at_signal']} in flight at the signal; exit {t['exit_code']} {t['exited_after_s']} s after it"


def table(phases: dict, connections: int, requests_per_connection: int) -> str:
    s, k = phases["sustained"], phases["worker_kill"]
    per_connection = f"each reused for {requests_per_connection} requests" if requests_per_connection else "never closed"
    rows = [("sustained load", s, ""),
            ("busiest worker SIGKILLed", k, kill_notes(k)),
            ("SIGTERM (until the signal)", phases["sigterm"], sigterm_notes(phases["sigterm"])),
            ("accurate model: SIGTERM (until the signal)", phases["sigterm_accurate"], sigterm_notes(phases["sigterm_accurate"]))]
    lines = [f"| phase ({connections} keep-alive connections, {per_connection}) "
             "| requests | seconds | failed | requests/s | p50 ms | p99 ms | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r, notes in rows:
        problems = ", ".join(f"{n} {p}" for p, n in r["problems"].items())
        failed = f"{r['failed']} ({problems})" if problems else "0"
        lines.append(f"| {name} | {r['requests']:,} | {r['seconds']:g} | {failed} | {r['requests_per_s']:,.0f} "
                     f"| {r['p50_ms']:g} | {r['p99_ms']:g} | {notes} |")
    return "\n".join(lines)


def load_maker(service, args):
    """A function that makes a new `Load` on `service`, and the warm-up done with it (connections, caches, worker threads)."""
    bodies, labels = request_bodies(), model_labels(service.port)

    def new_load() -> Load:
        return Load(service.port, bodies, labels, args.connections, args.requests_per_connection)

    sustained(service, new_load, 3)
    return new_load


def run(service, args) -> dict:
    new_load = load_maker(service, args)
    phases = {"sustained": sustained(service, new_load, args.duration)}
    print(f"sustained: {phases['sustained']}", file=sys.stderr)
    phases["worker_kill"] = worker_kill(service, new_load, args.fault_duration)
    print(f"worker kill: {phases['worker_kill']}", file=sys.stderr)
    phases["sigterm"] = sigterm(service, new_load, args.fault_duration)
    print(f"sigterm: {phases['sigterm']}", file=sys.stderr)
    return phases


def run_sigterm(service, args) -> dict:
    phase = sigterm(service, load_maker(service, args), args.fault_duration)
    print(f"sigterm, accurate model: {phase}", file=sys.stderr)
    return phase


@dataclass
class DockerEngine:
    """A Docker engine for the run: the one that answers, else one started here and stopped afterwards."""
    image: str
    started_here: bool = field(default=False, init=False)

    def __enter__(self) -> "DockerEngine":
        env = {**os.environ, "DOCKER_APT_PACKAGES": os.environ.get("DOCKER_APT_PACKAGES", "docker.io debootstrap")}
        if not engine_answers():
            subprocess.run(["bash", str(ROOT / ".ci" / "dockerd.sh"), "start"], check=True, env=env, timeout=600)
            self.started_here = True
        remove_soak_containers()  # leftovers of an interrupted earlier run
        subprocess.run(["bash", str(ROOT / ".ci" / "docker-image.sh"), "build", self.image], check=True, env=env, timeout=3600)
        return self

    def __exit__(self, *exc) -> None:
        remove_soak_containers()
        if self.started_here:
            subprocess.run(["bash", str(ROOT / ".ci" / "dockerd.sh"), "stop"], check=False, timeout=120)


def measured(service, measure, args, report: dict):
    """`measure(service, args)`, and the container's confinement into `report` the first time; the service is closed after."""
    try:
        if isinstance(service, DockerService) and "confinement" not in report:
            report["confinement"] = service.confinement()
        return measure(service, args)
    except BaseException:
        print(service.log_tail(), file=sys.stderr)
        raise
    finally:
        service.close()


def soaked(start, args, report: dict) -> dict:
    """`report` with every phase measured on the service `start(None)` starts, which serves the shipped model, and the
    SIGTERM phase again on one `start(ACCURATE_MODEL)` starts."""
    report["phases"] = measured(start(None), run, args, report)
    report["phases"]["sigterm_accurate"] = measured(start(ACCURATE_MODEL), run_sigterm, args, report)
    return report


def confinement_verdicts(c: dict) -> list[tuple[str, bool]]:
    return [(f"container: read-only root filesystem, no capabilities ({c['read_only_root']}, cap-drop {c['cap_drop']})",
             c["read_only_root"] and c["cap_drop"] == ["ALL"]),
            (f"container: no process runs as root (uids {c['process_uids']})", 0 not in c["process_uids"]),
            (f"container: only /tmp is writable ({c['writable']})", c["writable"] == ["/tmp"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["local", "docker"], default="local")
    parser.add_argument("--duration", type=float, default=60, help="seconds of sustained load")
    parser.add_argument("--fault-duration", type=float, default=20, help="seconds of load around each fault")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests-per-connection", type=int, default=100,
                        help="requests before a client reconnects, as a proxy's keepalive_requests does; 0: never")
    parser.add_argument("--image", default="sentiment-nb", help="image to build and run (--target docker)")
    args = parser.parse_args()
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    report = {"target": args.target, "connections": args.connections, "requests_per_connection": args.requests_per_connection,
              "duration_s": args.duration, "fault_duration_s": args.fault_duration,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.target == "local":
        soaked(lambda model: LocalService(out_dir, model), args, report)
        target = LocalService.name
    else:
        with DockerEngine(args.image):
            soaked(lambda model: DockerService(args.image, model), args, report)
        target = DockerService.name
    checks = verdicts(report["phases"]) + (confinement_verdicts(report["confinement"]) if "confinement" in report else [])
    report["checks"] = [{"check": text, "passed": ok} for text, ok in checks]
    (out_dir / f"soak-{args.target}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nPOST /predict to {target}: {args.duration:g} s sustained, {args.fault_duration:g} s around each fault\n")
    print(table(report["phases"], args.connections, args.requests_per_connection))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if not all(ok for _, ok in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
