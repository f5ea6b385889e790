"""Train a random forest on the iris data set, the SageMaker way: channels, hyperparameters and the model dir."""

import argparse
import csv
import json
import os
import pickle
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


def read_channel(directory):
    """Read every CSV in a channel: feature columns, then the label."""
    rows = []
    for path in sorted(Path(directory).glob("*.csv")):
        with path.open() as handle:
            rows.extend(row for row in csv.reader(handle) if row and not row[0].startswith("#"))
    features = [[float(value) for value in row[:-1]] for row in rows]
    labels = [int(row[-1]) for row in rows]
    return features, labels


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_estimators", type=int, default=100)
    parser.add_argument("--max_depth", type=int, default=None)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    args = parser.parse_args()

    if args.train:
        features, labels = read_channel(args.train)
        print(f"read {len(labels)} rows from channel train")
    else:
        iris = load_iris()
        features, labels = iris.data.tolist(), iris.target.tolist()
        print(f"no train channel: using the {len(labels)} rows of scikit-learn's bundled iris data")

    x_train, x_val, y_train, y_val = train_test_split(features, labels, test_size=0.3, random_state=0)
    model = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=0)
    model.fit(x_train, y_train)
    accuracy = model.score(x_val, y_val)
    print(f"validation accuracy={accuracy:.4f}")

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with (model_dir / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    (model_dir / "metrics.json").write_text(json.dumps({"validation:accuracy": accuracy}))


def model_fn(model_dir):
    """Load the model for serving: the scikit-learn container (and the local endpoint) call this with the unpacked
    model.tar.gz; its default input_fn, predict_fn and output_fn take CSV or JSON rows and answer the classes."""
    with (Path(model_dir) / "model.pkl").open("rb") as handle:
        return pickle.load(handle)


if __name__ == "__main__":
    main()
