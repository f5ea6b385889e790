"""Time a command as fresh processes: `python bench/spawn.py RUNS COMMAND...` prints RUNS wall times in seconds as JSON.

Runs inside the environment under test (`uv run --isolated --with ...`), so COMMAND's first word is looked up on that
environment's PATH. One untimed run first writes the bytecode caches, as any installed tool has them after its first
use; stdin is read once and given to every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time


def main() -> None:
    runs, command = int(sys.argv[1]), sys.argv[2:]
    executable = shutil.which(command[0])
    if executable is None:
        raise SystemExit(f"spawn: {command[0]} is not on PATH")
    argv = [executable, *command[1:]]
    payload = sys.stdin.read()
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, input=payload, text=True, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    json.dump(times[1:], sys.stdout)


if __name__ == "__main__":
    main()
