"""gunicorn settings for `make serve` and the container; each value from the environment, defaults sized for 2 cores.

HOST, PORT          bind address (default 0.0.0.0:5000)
WEB_CONCURRENCY     worker processes (default 2: one per core; prediction is CPU-bound)
THREADS             threads per worker (default 4: slow clients and keep-alive do not block a worker)
TIMEOUT             seconds a worker may stay silent before the master kills and replaces it (default 30)
GRACEFUL_TIMEOUT    seconds in-flight requests get to finish after SIGTERM (default 30)
TMPDIR              where the private folder of /metrics' per-worker files is made (default /tmp; /dev/shm if none is writable)
"""
import atexit
import ctypes
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid

import gunicorn
from gunicorn import util
from gunicorn.errors import HaltServer
from gunicorn.workers import base

# prometheus_client's multiprocess mode: each worker writes its metrics to files in PROMETHEUS_MULTIPROC_DIR and
# /metrics adds up those of every worker, live or replaced. prometheus_client reads the variable once, when imported,
# and the app imports it in this master (preload_app), so it is set here, when gunicorn reads its settings: always a
# fresh private folder (mkdtemp: mode 0700), whatever the environment said, so no stale counts from an earlier run.
METRICS_DIR_OWNER = "SENTIMENT_NB_METRICS_DIR_PID"  # the master that made the folder, which removes it when it exits


def make_metrics_dir() -> None:
    """Create this master's private PROMETHEUS_MULTIPROC_DIR, once: a SIGHUP re-reads this file, and the loaded app
    keeps counting in the folder it started with. Removed when the master exits, start-up failures included."""
    if os.environ.get(METRICS_DIR_OWNER) == str(os.getpid()):
        return
    try:
        folder = tempfile.mkdtemp(prefix="sentiment-nb-metrics-")
    except OSError:  # a read-only container without a tmpfs at /tmp: RAM-backed /dev/shm, as for the heartbeat files
        folder = tempfile.mkdtemp(prefix="sentiment-nb-metrics-", dir="/dev/shm")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    os.environ[METRICS_DIR_OWNER] = str(os.getpid())
    atexit.register(remove_metrics_dir, folder, os.getpid())


def remove_metrics_dir(folder: str, master: int) -> None:
    if os.getpid() == master:  # forked workers inherit this handler and also leave through sys.exit
        shutil.rmtree(folder, ignore_errors=True)


def refuse_a_taken_port(host: str, port: str) -> None:
    """Stop at once, in one line, when something already listens on host:port: gunicorn itself would find out only after
    loading the model (seconds), and then retry for five more."""
    if os.environ.get(METRICS_DIR_OWNER) == str(os.getpid()) or "GUNICORN_FD" in os.environ or "LISTEN_FDS" in os.environ:
        return  # this file re-read by a running master (SIGHUP), or a master handed its sockets (USR2, systemd): the port is ours
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: a recently closed server is no obstacle
            probe.bind(address)
    except (OSError, ValueError) as err:
        sys.exit(f"Error: cannot listen on {host}:{port} ({getattr(err, 'strerror', None) or err}); stop what listens there, "
                 "or choose another HOST/PORT")


HOST, PORT = os.environ.get("HOST", "0.0.0.0"), os.environ.get("PORT", "5000")
refuse_a_taken_port(HOST, PORT)
make_metrics_dir()

bind = f"{HOST}:{PORT}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("THREADS", "4"))
# gthread, except that a worker takes a new connection only while it has a free thread (app/worker.py): connections opened
# at once spread over the workers instead of piling onto whichever woke first
worker_class = "app.worker.ThreadWorkerTakingItsShare"
timeout = int(os.environ.get("TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Load and verify the model once in the master: a bad model stops start-up before any port is bound,
# and the workers share the loaded pipeline's memory copy-on-write.
preload_app = True
# The app writes one JSON line per request; gunicorn's access log would be a second one.
accesslog = None
# The control socket's default path is per user, so parallel instances would fight over it (and the
# container's user has no home); nothing here uses gunicornc.
control_socket_disable = True
# Heartbeat files on tmpfs: a container's overlay filesystem can stall them and get workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def when_ready(server):
    """In the master, after the app and its model are loaded and before the first fork: hand the heap that loading
    freed back to the OS, so that workers do not start with it mapped."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass


# ---- Keep-alive connections after a worker is replaced
# A client's connection stays with the worker that accepted it. When a worker dies, its clients reconnect at once,
# before the replacement is up, so the survivors take them all and keep them while the new worker idles. So each new
# worker, once ready, asks its siblings to hand back a fair share: each closes that share of its connections after
# their next response and takes no new connection meanwhile, so the clients' reconnections reach the new worker.
SHARE_SIGNAL = signal.SIGWINCH  # ignored by a worker until post_worker_init installs the handler (and by default)
SHARE_WINDOW_S = 2.0  # a connection that sends no request within this is idle, and keep-alive closes it soon anyway


class ConnectionSharing:
    """WSGI middleware around a worker's app: after `share_out(workers)`, it closes every `workers`-th connection but
    one (1 in 2 for two workers) after its next response, counting each connection once within SHARE_WINDOW_S."""

    def __init__(self, wsgi, workers: int):
        self.wsgi, self.workers = wsgi, workers
        self.until, self.seen, self.counted = 0.0, set(), 0

    def share_out(self, *_signal) -> None:
        """From the signal handler, in the worker's main thread: the next window starts."""
        self.seen, self.counted, self.until = set(), 0, time.monotonic() + SHARE_WINDOW_S

    def __call__(self, environ, start_response):
        if time.monotonic() < self.until and self._hand_back(environ):
            # gunicorn's Response.force_close: the answer says `Connection: close` and the worker closes it after
            force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
            if force_close is not None:
                force_close()
        return self.wsgi(environ, start_response)

    def _hand_back(self, environ) -> bool:
        connection = (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))
        if connection in self.seen:
            return False
        self.seen.add(connection)
        self.counted += 1
        return self.counted % self.workers != 0


def is_child_of(pid: int, parent: int) -> bool:
    """Whether `pid` is still a child of `parent` (a worker that died may have left its pid to another process)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1]) == parent
    except (OSError, IndexError, ValueError):
        return False


def post_fork(server, worker):
    """In each new worker, right after the fork: the master's other workers are its siblings."""
    worker.siblings = list(server.WORKERS)


def post_worker_init(worker):
    """In each new worker, once it is ready to serve: count it among /metrics' live workers; a replacement (or an added
    worker) asks its siblings for its share of their connections (see ConnectionSharing)."""
    from app.metrics import count_worker  # loaded with the app by then

    count_worker(worker.wsgi)
    sharing = worker.wsgi = ConnectionSharing(worker.wsgi, worker.cfg.workers)

    def share_out(*_signal):
        sharing.share_out()
        if hasattr(worker, "hold_back"):  # app/worker.py: the clients it lets go must reconnect to the new worker, not to it
            worker.hold_back(SHARE_WINDOW_S)
    signal.signal(SHARE_SIGNAL, share_out)
    if worker.age <= worker.cfg.workers:
        return  # one of the first workers: its siblings are starting too and hold no connections yet
    for sibling in getattr(worker, "siblings", []):
        if is_child_of(sibling, worker.ppid):
            os.kill(sibling, SHARE_SIGNAL)


def leave_at_once(status: int) -> None:
    """Exit now, skipping Python's teardown, which frees the loaded model object by object: a worker would first copy
    every page it shares with the master (up to 2 s after SIGTERM for the accurate tier), and on a loaded 2-core machine
    the master's teardown alone took 3 to 4 s. Every log line is written already; stdio is flushed here."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def worker_exit(server, worker):
    """In each worker, the last thing gunicorn does: leave at once, as a forked child should (`os._exit`)."""
    _, leaving, _ = sys.exc_info()  # gunicorn calls this while the worker's SystemExit propagates
    code = leaving.code if isinstance(leaving, SystemExit) else 0
    if isinstance(code, str):
        print(code, file=sys.stderr)
    leave_at_once(code if isinstance(code, int) else 0 if code is None else 1)


def on_exit(server):
    """In the master, the last thing gunicorn does after stopping its workers: remove the metrics folder and leave at once,
    with the status gunicorn halts with (0 after SIGTERM or Ctrl-C; a HaltServer's own, e.g. when workers fail to boot)."""
    _, reason, _ = sys.exc_info()  # gunicorn halts inside the `except` that caught the reason
    remove_metrics_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"], os.getpid())
    leave_at_once(reason.exit_status if isinstance(reason, HaltServer) else 0)


def child_exit(server, worker):
    """In the master, after a worker exited, however it died: it leaves the live-worker count; its counts stay in the sums."""
    from prometheus_client import multiprocess  # imported by the app after PROMETHEUS_MULTIPROC_DIR was set

    multiprocess.mark_process_dead(worker.pid)


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own answer to a request it cannot parse (bad request line, oversized headers, broken chunking),
    in the API's JSON error shape rather than gunicorn's HTML page."""
    from app.errors import error_body  # loaded with the app by then

    code = "internal_error" if status_int == 500 else reason.lower().replace(" ", "_").replace("-", "_")
    body = json.dumps(error_body(code, mesg or reason, uuid.uuid4().hex)).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def answer_parse_errors_in_json() -> None:
    """gunicorn's workers send their parse errors through `gunicorn.util.write_error`, a private name: replace it, and stop
    start-up loudly if a gunicorn release no longer calls it, rather than answer in HTML without a word."""
    if not callable(getattr(util, "write_error", None)) or "write_error" not in base.Worker.handle_error.__code__.co_names:
        sys.exit(f"Error: gunicorn {gunicorn.__version__} no longer sends its parse errors through gunicorn.util.write_error; "
                 "app/gunicorn.conf.py cannot answer them in JSON")
    util.write_error = write_json_error


answer_parse_errors_in_json()
