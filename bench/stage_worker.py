"""Stage one archive in a fresh process; print the staging time, peak RSS, digests and size as JSON.

`python -m bench.stage_worker INPUT OUTPUT`. The time covers `stage_archive` alone (imports excluded); peak RSS is
the high-water mark of this process's own memory map (`VmHWM`; `ru_maxrss` would carry the parent's across exec),
with the mark after imports as a baseline. `digest` is the staged code's (the tar's) and `sha256` the output file's: the
latter is what the reproducibility rows compare, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from sagepush import staging


def main() -> None:
    source, output = Path(sys.argv[1]), Path(sys.argv[2])
    baseline = _high_water_kib()
    start = time.perf_counter()
    with source.open("rb") as src, output.open("wb") as dst:
        staged = staging.stage_archive(src, dst, filename=source.name)
    seconds = time.perf_counter() - start
    peak = _high_water_kib()
    json.dump(
        {
            "seconds": seconds,
            "peak_rss_mib": peak / 1024,
            "baseline_rss_mib": baseline / 1024,
            "digest": staged.digest,
            "sha256": _sha256(output),
            "size": staged.size,
            "python": sys.version.split()[0],
        },
        sys.stdout,
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _high_water_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
