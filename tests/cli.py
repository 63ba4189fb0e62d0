"""Run the `sentiment-nb` console script as a real subprocess, as a user would."""
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("sentiment-nb"))


def run_cli(*args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)
