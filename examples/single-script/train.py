# /// script
# requires-python = ">=3.10"
# dependencies = ["scikit-learn>=1.3"]
#
# [tool.sagepush]
# framework = "sklearn"
# framework_version = "1.2-1"
# py_version = "py3"
# instance_type = "ml.m5.large"
# max_run = "10m"
# hyperparameters = { regularization = 1.0 }
# metric_definitions = [{ Name = "validation:accuracy", Regex = "validation accuracy=([0-9.]+)" }]
# ///
"""One file is a whole project: PEP 723 names its dependencies and its [tool.sagepush] settings."""

import argparse
import os
import pickle
from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--regularization", type=float, default=1.0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    args = parser.parse_args()

    wine = load_wine()
    x_train, x_val, y_train, y_val = train_test_split(wine.data, wine.target, test_size=0.3, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.regularization, max_iter=1000))
    model.fit(x_train, y_train)
    print(f"validation accuracy={model.score(x_val, y_val):.4f}")

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with (model_dir / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle)


if __name__ == "__main__":
    main()
