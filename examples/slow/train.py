"""Train slowly, one epoch a second; on SIGTERM (a stop or MaxRuntime) save what there is to the model dir."""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

MODEL_DIR = Path(os.environ.get("SM_MODEL_DIR", "model"))
state = {"epoch": 0}


def save_on_sigterm(signum, frame):
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    (MODEL_DIR / "sigterm.json").write_text(json.dumps({"signal": signum, "epoch": state["epoch"]}))
    print(f"SIGTERM at epoch {state['epoch']}: checkpoint saved", flush=True)
    sys.exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=600)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, save_on_sigterm)
    for epoch in range(1, args.epochs + 1):
        state["epoch"] = epoch
        print(f"epoch {epoch}/{args.epochs} loss={1.0 / epoch:.4f}", flush=True)
        time.sleep(1)
    (MODEL_DIR / "done.json").write_text(json.dumps({"epochs": args.epochs}))


if __name__ == "__main__":
    main()
