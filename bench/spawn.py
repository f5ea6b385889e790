"""Time commands as fresh processes: `python bench/spawn.py RUNS COMMAND... [:: COMMAND...]`.

Prints, as JSON, one list of RUNS wall times in seconds per command. Runs inside the environment under test
(`uv run --isolated --with ...`), so each command's first word is looked up on that environment's PATH. One untimed
run of each first writes the bytecode caches, as any installed tool has them after its first use; several commands
take turns, so a machine that slows down mid-run slows all of them alike. stdin is read once and given to every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

SEPARATOR = "::"


def main() -> None:
    runs, words = int(sys.argv[1]), sys.argv[2:]
    commands: list[list[str]] = [[]]
    for word in words:
        if word == SEPARATOR:
            commands.append([])
        else:
            commands[-1].append(word)
    argvs = []
    for command in commands:
        executable = shutil.which(command[0])
        if executable is None:
            raise SystemExit(f"spawn: {command[0]} is not on PATH")
        argvs.append([executable, *command[1:]])
    payload = sys.stdin.read()
    times: list[list[float]] = [[] for _ in argvs]
    for _ in range(runs + 1):
        for argv, taken in zip(argvs, times, strict=True):
            start = time.perf_counter()
            subprocess.run(argv, input=payload, text=True, capture_output=True, check=True)
            taken.append(time.perf_counter() - start)
    json.dump([taken[1:] for taken in times], sys.stdout)


if __name__ == "__main__":
    main()
