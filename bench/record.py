"""Run a benchmark and add what it printed to bench/RESULTS.md, dated, with the machine's load: the benchmarks' history.

    .venv/bin/python -m bench.record NAME COMMAND...          (what `make bench`, `bench-http` and `bench-scale` run)

COMMAND's output passes through as it comes. A run that printed a Markdown table is recorded under `## NAME`, newest
first, whether or not it met its targets (a missed target is a result too); a run that printed no table is not.
The exit code is COMMAND's. RESULTS.md is rewritten whole or not at all (a temporary file beside it, then a rename).
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = """# Benchmark results

Every run of `make bench`, `make bench-http` and `make bench-scale` adds its tables here, newest first under each
benchmark, with the date and the machine's load average (the machine is shared: compare figures of one run with each
other, and read small differences between runs as noise). The README quotes one current figure per claim.
"""


def entry(output: str, load_before: float) -> str:
    """One run's section: when, on what load, and what the benchmark printed."""
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores"
    return f"### {when} ({load})\n\n{output.strip()}\n\n"


def with_entry(results: str, name: str, new: str) -> str:
    """`results` with `new` as the newest entry of benchmark `name` (a section of its own if it has none yet)."""
    marker = f"<!-- {name}: newest first -->\n\n"
    if marker not in results:
        return results.rstrip("\n") + f"\n\n## {name}\n\n{marker}{new}"
    return results.replace(marker, marker + new, 1)


def write_whole(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.exit(__doc__)
    name, command = argv[0], argv[1:]
    load_before = os.getloadavg()[0]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    code = process.wait()
    output = "".join(lines)
    if any(line.startswith("|") for line in lines):
        results = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
        write_whole(RESULTS, with_entry(results, name, entry(output, load_before)))
        print(f"\nrecorded in {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}",
              file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
