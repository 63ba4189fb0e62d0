"""Start the real servers on a free loopback port and stop them with SIGTERM; shared by bench_http.py and tests/test_app_*.py."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def gunicorn_command() -> list[str]:
    """What `make serve` runs."""
    return [str(BIN / "gunicorn"), "-c", "app/gunicorn.conf.py", "app:create_app()"]


def dev_server_command() -> list[str]:
    """The original tutorial's way: `python app/app.py`, Flask's development server."""
    return [sys.executable, "app/app.py"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_status(url: str, timeout: float = 2) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log_path: Path  # the server's stdout and stderr
    seconds_to_ready: float | None = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, as `docker stop` sends it; the exit code once the process is gone (SIGKILL after `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(command: list[str], log_path: Path, env: dict[str, str] | None = None,
                 ready_timeout: float = 60, wait_ready: bool = True) -> Server:
    """`command` serving on 127.0.0.1 and a free port; by default returns once /health says 200."""
    port = free_port()
    environment = {**os.environ, **(env or {}), "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    if not wait_ready:
        return server
    deadline = started + ready_timeout
    while time.perf_counter() < deadline and process.poll() is None:
        if get_status(server.url + "/health", timeout=1) == 200:
            server.seconds_to_ready = time.perf_counter() - started
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{command} did not become ready within {ready_timeout}s (exit {process.returncode}):\n{server.log()[-3000:]}")
