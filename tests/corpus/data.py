"""Channel data for the corpus's projects: small, deterministic, and laid out as each upstream test or notebook
uploads it (the keys below are theirs, under s3://<ArtifactBucket>/data/<project>/).

Made from the upstream repositories' own small data files where they have one (corpus.toml's [upstream_data]), and
otherwise generated here with numpy from a fixed seed, in the shape the upstream notebook makes it. `make(name)`
returns {key: bytes}.
"""

from __future__ import annotations

import io
import math
import struct
from typing import TYPE_CHECKING

import numpy as np

from tests.corpus.projects import read_data

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

SEED = 42
MNIST_TRAIN_ROWS = 512
MNIST_TEST_ROWS = 128
SKLEARN_MNIST_TRAIN_ROWS = 1000


def make(name: str) -> dict[str, bytes]:
    """The channel data of generator `name` (corpus.toml's `data`), by key."""
    return GENERATORS[name]()


def nothing() -> dict[str, bytes]:
    """A project whose SDK call has no inputs."""
    return {}


def sklearn_mnist() -> dict[str, bytes]:
    """tests/integ/test_sklearn.py uploads sklearn_mnist/train and /test: train.npz and test.npz, x (n x 784 uint8
    pixels) and y (labels). The test file is upstream's; the train file (over 4 MiB upstream) is its first 1 000
    digits."""
    test = read_data("mnist-test-npz")
    with np.load(io.BytesIO(test)) as digits:
        x, y = digits["x"][:SKLEARN_MNIST_TRAIN_ROWS], digits["y"][:SKLEARN_MNIST_TRAIN_ROWS]
    train = io.BytesIO()
    np.savez_compressed(train, x=x, y=y)
    return {
        "integ-test-data/sklearn_mnist/train/train.npz": train.getvalue(),
        "integ-test-data/sklearn_mnist/test/test.npz": test,
    }


def abalone() -> dict[str, bytes]:
    """tests/integ/test_xgboost.py uploads the file xgboost_abalone/abalone; its channel is that object's URI."""
    return {"integ-test-data/xgboost_abalone/abalone/abalone": read_data("abalone")}


def iris() -> dict[str, bytes]:
    """The scikit_learn_iris notebook's data/iris.csv: the 150 iris rows, label (0, 1, 2) first, written with
    `np.savetxt(..., fmt="%1.1f, %1.3f, %1.3f, %1.3f, %1.3f")`. Read from the SDK's copy of iris (TensorFlow's layout:
    a count header line, the label last)."""
    rows: list[list[float]] = []
    for name in ("iris-training", "iris-test"):
        lines = read_data(name).decode().splitlines()[1:]
        for line in lines:
            *features, label = line.split(",")
            rows.append([float(label), *(float(f) for f in features)])
    out = io.BytesIO()
    np.savetxt(out, np.array(rows), delimiter=",", fmt="%1.1f, %1.3f, %1.3f, %1.3f, %1.3f")
    return {"DEMO-scikit-iris/data/iris.csv": out.getvalue()}


def housing() -> dict[str, bytes]:
    """The sagemaker-script-mode notebook's synthetic houses, made as its cells make them: 1 506 houses in the
    columns of generate_synthetic_housing_data.py (its distributions, and its price formula, in which the garage and
    front-porch terms are always 0), the first 80 % for training, prices divided by 100 000, features standardised
    per split; CSV with the price (divided once more, as the notebook does) first and no header, and numpy arrays."""
    rng = np.random.default_rng(SEED)
    count = 1506
    year_built = np.minimum(2019, np.trunc(rng.normal(1995, 10, count)))
    square_feet = rng.normal(3000, 750, count)
    bedrooms = rng.integers(2, 7, count).astype(float)
    bathrooms = rng.integers(2, 7, count) / 2
    lot_acres = np.round(rng.normal(1.0, 0.25, count), 2)
    garage_spaces = rng.integers(0, 4, count).astype(float)
    front_porch = rng.integers(0, 2, count).astype(float)
    deck = rng.integers(0, 2, count).astype(float)
    price = np.trunc(
        150 * square_feet
        + 10000 * bedrooms
        + 15000 * bathrooms
        + 15000 * lot_acres
        + 15000 * garage_spaces
        - 5000 * (2019 - year_built)
    )
    features = np.column_stack(
        [year_built, square_feet, bedrooms, bathrooms, lot_acres, garage_spaces, front_porch, deck]
    )
    split = math.floor(0.8 * count)
    x_train, x_test = _standardised(features[:split]), _standardised(features[split:])
    y_train, y_test = price[:split] / 100000, price[split:] / 100000
    prefix = "script-mode-workflow"
    return {
        f"{prefix}/csv/train.csv": _csv(np.column_stack([y_train / 100000, x_train])),
        f"{prefix}/csv/test.csv": _csv(np.column_stack([y_test / 100000, x_test])),
        f"{prefix}/numpy/train/x_train.npy": _npy(x_train),
        f"{prefix}/numpy/train/y_train.npy": _npy(y_train),
        f"{prefix}/numpy/test/x_test.npy": _npy(x_test),
        f"{prefix}/numpy/test/y_test.npy": _npy(y_test),
    }


def pytorch_mnist() -> dict[str, bytes]:
    """tests/integ/test_pytorch.py uploads pytorch_mnist/training as the channel `training`, read by torchvision's
    `datasets.MNIST(dir, download=False)`. Upstream's processed .pt files are over 4 MiB and need torch to write:
    this is the same data set as torchvision's raw files (which it reads when there are no .pt files), 512 training
    and 128 test digits of the SDK's MNIST test file."""
    return _mnist_raw("integ-test-data/pytorch_mnist/training/MNIST/raw")


def pipeline_mnist() -> dict[str, bytes]:
    """The training_pipeline_pytorch_mnist notebook downloads MNIST with torchvision into data/ and uploads data/ to
    sagemaker/DEMO-pytorch-mnist: MNIST/raw/ as torchvision writes it (here 512 and 128 digits, see pytorch_mnist)."""
    return _mnist_raw("sagemaker/DEMO-pytorch-mnist/MNIST/raw")


def _mnist_raw(prefix: str) -> dict[str, bytes]:
    with np.load(io.BytesIO(read_data("mnist-test-npz"))) as digits:
        x, y = digits["x"], digits["y"]
    train, test = slice(0, MNIST_TRAIN_ROWS), slice(MNIST_TRAIN_ROWS, MNIST_TRAIN_ROWS + MNIST_TEST_ROWS)
    return {
        f"{prefix}/train-images-idx3-ubyte": _idx_images(x[train]),
        f"{prefix}/train-labels-idx1-ubyte": _idx_labels(y[train]),
        f"{prefix}/t10k-images-idx3-ubyte": _idx_images(x[test]),
        f"{prefix}/t10k-labels-idx1-ubyte": _idx_labels(y[test]),
    }


def _idx_images(pixels: NDArray[np.uint8]) -> bytes:
    """The IDX format of MNIST's image files: magic 0x803 (unsigned bytes, 3 dimensions), the sizes, the pixels."""
    return struct.pack(">IIII", 0x0803, len(pixels), 28, 28) + pixels.astype(np.uint8).tobytes()


def _idx_labels(labels: NDArray[np.uint8]) -> bytes:
    return struct.pack(">II", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes()


def _standardised(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """As scikit-learn's StandardScaler().fit_transform: zero mean, unit (population) variance, constant columns
    only centred."""
    scale: NDArray[np.float64] = np.where(values.std(axis=0) == 0, 1.0, values.std(axis=0))
    centred: NDArray[np.float64] = values - values.mean(axis=0)
    return centred / scale


def _csv(rows: NDArray[np.float64]) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


def _npy(array: NDArray[np.float64]) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


GENERATORS: dict[str, Callable[[], dict[str, bytes]]] = {
    "none": nothing,
    "sklearn_mnist": sklearn_mnist,
    "abalone": abalone,
    "iris": iris,
    "housing": housing,
    "pytorch_mnist": pytorch_mnist,
    "pipeline_mnist": pipeline_mnist,
}
