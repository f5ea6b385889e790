"""Audit every package pinned in uv.lock for known vulnerabilities with pip-audit, and never pass silently.

`make lint-deps` runs it as `python scripts/audit_lock.py --uv <uv> --pip-audit <version>`. It exports the lock (all
groups, with hashes), asks pip-audit's PyPI advisory service and then OSV, and exits:

- 1 when a package has a known vulnerability, or when the advisory source answered for some packages but not all
  (a partial audit is not a pass);
- 0 with "no known vulnerabilities" when every package was audited;
- when no advisory source answered for any package (no network, or a registry mirror that serves packages but not
  PyPI's per-version JSON API, where the advisories live): a banner saying the lock was NOT audited and why, then 0,
  or 1 when SAGEPUSH_REQUIRE_AUDIT=1 (set it wherever the advisory sources are reachable, so an outage there fails).

pip-audit on its own reports "No known vulnerabilities found" and exits 0 when every package was skipped as "not
found", which is why this wrapper reads its JSON report instead of its exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("pypi", "osv")
# What pip-audit says (skip reasons, errors) when its advisory service did not answer, as opposed to a finding.
UNANSWERED = ("not found on PyPI", "ConnectionError", "NameResolutionError", "Max retries exceeded", "timed out")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default="uv", help="the uv executable")
    parser.add_argument("--pip-audit", default="2.10.1", help="the pip-audit version to run")
    args = parser.parse_args()
    required = os.environ.get("SAGEPUSH_REQUIRE_AUDIT") == "1"

    with tempfile.TemporaryDirectory(prefix="sagepush-audit-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        exported = subprocess.run(
            [args.uv, "export", "--frozen", "--all-groups", "--no-emit-project", "--output-file", str(requirements)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if exported.returncode != 0:
            print(f"error: uv export failed:\n{exported.stderr}", file=sys.stderr)
            return 1
        reasons = []
        for service in SERVICES:
            outcome, detail = _audit(args.uv, args.pip_audit, requirements, service, Path(tmp) / f"{service}.json")
            if outcome in {"clean", "vulnerable", "partial"}:
                print(detail, file=sys.stderr if outcome != "clean" else sys.stdout)
                return 0 if outcome == "clean" else 1
            reasons.append(f"{service}: {detail}")
    banner = "pip-audit: uv.lock was NOT audited: no advisory source answered\n  " + "\n  ".join(reasons)
    if required:
        print(f"error: {banner}\n  (SAGEPUSH_REQUIRE_AUDIT=1 makes this an error)", file=sys.stderr)
        return 1
    print(f"warning: {banner}\n  Set SAGEPUSH_REQUIRE_AUDIT=1 where they are reachable to make this an error.")
    return 0


def _audit(uv: str, version: str, requirements: Path, service: str, report: Path) -> tuple[str, str]:
    """Run pip-audit against one service; return (clean | vulnerable | partial | unanswered, what to print)."""
    command = [uv, "tool", "run", "--from", f"pip-audit=={version}", "pip-audit", "--requirement", str(requirements)]
    command += ["--disable-pip", "--require-hashes", "--vulnerability-service", service]
    command += ["--format", "json", "--output", str(report), "--progress-spinner", "off"]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if not report.exists() or not report.read_text().strip():
        if any(marker in run.stderr for marker in UNANSWERED):
            return "unanswered", _last_line(run.stderr)
        return "partial", f"error: pip-audit failed without a report (exit {run.returncode}):\n{run.stderr}"
    dependencies = json.loads(report.read_text())["dependencies"]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    if vulnerable:
        lines = [
            f"  {d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v.get('fix_versions') or ['no release'])})"
            for d in vulnerable
            for v in d["vulns"]
        ]
        return "vulnerable", "error: pip-audit found known vulnerabilities in uv.lock:\n" + "\n".join(lines)
    if skipped and len(skipped) == len(dependencies) and all(_unanswered(d["skip_reason"]) for d in skipped):
        example = skipped[0]["skip_reason"]
        return "unanswered", f"every one of {len(skipped)} packages skipped, e.g. {example!r}"
    if skipped:
        names = ", ".join(f"{d['name']} ({d['skip_reason']})" for d in skipped)
        return "partial", f"error: pip-audit ({service}) could not audit {len(skipped)} packages: {names}"
    return "clean", f"pip-audit ({service}): {len(dependencies)} packages in uv.lock, no known vulnerabilities"


def _unanswered(reason: str) -> bool:
    return any(marker in reason for marker in UNANSWERED)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


if __name__ == "__main__":
    sys.exit(main())
