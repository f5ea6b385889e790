"""Run the benchmarks, print the table and write bench/results.json: `python -m bench [--quick] [--only ROWS]`."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import data, rows

RESULTS = Path(__file__).with_name("results.json")
STEPS = ("staging", "memory", "python313", "init", "render", "stack")


@dataclass(frozen=True, slots=True)
class Scale:
    """Input sizes and repetitions of one run."""

    tree: data.TreeShape
    stack_tree: data.TreeShape
    weights_tree: data.TreeShape
    staging_runs: int
    large_mib: int
    init_runs: int
    render_runs: int
    s3_runs: int
    status_events: int
    pushes: int


FULL_TREE = data.TreeShape(3000, 16, 140, 28)
# Shaped like real ML code, which ships weights and images: more than half of this tree is already-compressed data,
# the rest source and tensors that deflate does shrink (about 204 MiB, 146 MiB as tar.gz).
WEIGHTS_TREE = data.TreeShape(1500, 16, 180, 20, binary_kinds=("random", "random", "random", "nibbles", "sparse"))
FULL = Scale(
    FULL_TREE,
    FULL_TREE,
    WEIGHTS_TREE,
    staging_runs=3,
    large_mib=1024,
    init_runs=15,
    render_runs=5,
    s3_runs=3,
    status_events=50,
    pushes=9,
)
# The quick S3 -> S3 row keeps the full tree: below a few parts, compressing and the upload cannot overlap, so a
# small archive measures fixed costs rather than the streaming path.
QUICK = Scale(
    data.TreeShape(120, 8, 12, 8),
    FULL_TREE,
    data.TreeShape(60, 8, 16, 4, binary_kinds=("random",)),
    staging_runs=5,
    large_mib=128,
    init_runs=3,
    render_runs=2,
    s3_runs=2,
    status_events=10,
    pushes=3,
)


def run(scale: Scale, steps: tuple[str, ...], work: Path) -> tuple[list[rows.Row], dict[str, object]]:
    """Generate the inputs and measure the selected steps; return the rows and a description of the inputs."""
    found: list[rows.Row] = []
    inputs: dict[str, object] = {}
    archive = work / "project.tar.gz"
    staging: rows.StagingRuns | None = None
    if {"staging", "python313"} & set(steps) or ("stack" in steps and scale.stack_tree == scale.tree):
        inputs["tree_bytes"], inputs["archive_bytes"] = _archive(scale.tree, work / "tree", archive, "inputs")
        inputs["tree_files"] = scale.tree.text_files + scale.tree.binary_files
        label = f"({inputs['tree_bytes'] / 2**20:.0f} MiB tree, {inputs['archive_bytes'] / 2**20:.0f} MiB tar.gz)"
        if "staging" in steps or "python313" in steps:
            staging = rows.run_staging(archive, work, scale.staging_runs)
            found.extend(rows.staging_rows(staging, label))
    if "staging" in steps:
        heavy = work / "weights.tar.gz"
        tree_bytes, archive_bytes = _archive(scale.weights_tree, work / "weights-tree", heavy, "weights-heavy inputs")
        inputs["weights_tree_bytes"], inputs["weights_archive_bytes"] = tree_bytes, archive_bytes
        heavy_work = work / "weights-staging"
        heavy_work.mkdir()
        label = f"(weights-heavy: {tree_bytes / 2**20:.0f} MiB tree, {archive_bytes / 2**20:.0f} MiB tar.gz)"
        found.extend(rows.staging_rows(rows.run_staging(heavy, heavy_work, scale.staging_runs), label))
    if "memory" in steps:
        large = work / "large.tar.gz"
        inputs["large_archive_bytes"] = data.large_archive(large, scale.large_mib)
        rows.timed(found, lambda: [rows.memory_row(large, work)], "memory")
        large.unlink()
    if "python313" in steps and staging is not None:
        expected = str(staging.results[0]["sha256"])
        rows.timed(found, lambda: [rows.cross_python_row(archive, work, expected)], "python 3.13")
    if "init" in steps:
        rows.timed(found, lambda: rows.cold_init_rows(scale.init_runs, work), "cold init")
    if "render" in steps:
        rows.timed(found, lambda: rows.render_rows(work, scale.render_runs, scale.init_runs), "render")
    if "stack" in steps:
        stack_archive = archive
        if scale.stack_tree != scale.tree:
            stack_archive = work / "stack-project.tar.gz"
            _, inputs["stack_archive_bytes"] = _archive(
                scale.stack_tree, work / "stack-tree", stack_archive, "stack inputs"
            )
        rows.timed(
            found,
            lambda: rows.stack_rows(stack_archive, scale.s3_runs, scale.status_events, scale.pushes),
            "local stack",
        )
    return found, inputs


def _archive(shape: data.TreeShape, tree: Path, archive: Path, label: str) -> tuple[int, int]:
    """Write a tree of `shape` and its GNU tar.gz; return the tree's and the archive's bytes."""
    start = time.perf_counter()
    tree_bytes = data.write_tree(tree, shape)
    data.gnu_tar_gz(tree, archive)
    print(f"  {label}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return tree_bytes, archive.stat().st_size


def table(found: list[rows.Row]) -> str:
    """Render the rows as a Markdown table."""
    lines = ["| what | reference (same run) | measured | ratio | target | result |", "|---|---|---|---|---|---|"]
    for row in found:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            f"| {row.what} | {row.reference} | {row.measured} | {ratio} | {row.target} | "
            f"{'pass' if row.passed else 'MISS'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs and few repetitions (seconds, not minutes)")
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps among {', '.join(STEPS)}")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON results")
    parser.add_argument(
        "--slack",
        type=float,
        default=1.0,
        help="fail only on a ratio more than SLACK times behind its target (1.25: a quarter; default: any miss)",
    )
    args = parser.parse_args(argv)
    steps = tuple(s for s in args.only.split(",") if s)
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {', '.join(sorted(unknown))}; choose among {', '.join(STEPS)}")
    scale = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sagepush-bench-") as work:
        found, inputs = run(scale, steps, Path(work))
    document = {
        "mode": "quick" if args.quick else "full",
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": _cpus()},
        "inputs": inputs,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": [row.as_dict() for row in found],
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(table(found))
    missed = [row.what for row in found if not row.passed]
    print(f"\n{len(found) - len(missed)} of {len(found)} targets met in {document['seconds']} s; wrote {args.output}")
    if args.slack == 1.0:
        return 1 if missed else 0
    behind = [row.what for row in found if not row.within_slack(args.slack)]
    for what in behind:
        print(f"behind its target by more than {args.slack:g}x: {what}", file=sys.stderr)
    return 1 if behind else 0


def _cpus() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
