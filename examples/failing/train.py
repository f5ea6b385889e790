"""Fail the way real training code does: a check deep in the data loading raises, with a traceback."""

import argparse

from sklearn.datasets import load_iris


class NotEnoughDataError(ValueError):
    """The training data is smaller than the job asked for."""


def load_rows(min_rows):
    rows = load_iris().data.tolist()
    check_size(rows, min_rows)
    return rows


def check_size(rows, min_rows):
    if len(rows) < min_rows:
        raise NotEnoughDataError(f"only {len(rows)} rows of training data, at least {min_rows} needed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--min_rows", type=int, default=1000)
    args = parser.parse_args()
    print(f"loading at least {args.min_rows} rows")
    load_rows(args.min_rows)


if __name__ == "__main__":
    main()
