"""Data: datasets, a mini-batch loader, splits, preprocessing, built-in and user data sets.

    from chainrule.data import DataLoader, TensorDataset, load_dataset
    data = load_dataset("moons", noise=0.2, val_size=0.1)
    loader = DataLoader(data.dataset("train"), batch_size=64, shuffle=True, seed=0)
    for xb, yb in loader:      # float32 features, int64 labels, as chainrule Tensors
        ...

Optional packages are imported only when needed: scikit-learn for digits, iris, wine and
breast_cancer; mnist1d for mnist1d (both in the ``data`` extra).
"""

from .builtin import list_datasets, load_dataset
from .bundle import DatasetBundle, DatasetInfo
from .dataset import Dataset, RowsDataset, TensorDataset
from .files import RawData, load_csv, load_npz, read_csv, read_npz
from .loader import DataLoader
from .preprocessing import Standardizer, encode_labels, one_hot
from .split import SplitResult, infer_task, split, split_indices
from .synthetic import (
    make_blobs,
    make_circles,
    make_gaussians,
    make_moons,
    make_spirals,
    make_xor,
)

__all__ = [
    "DataLoader",
    "Dataset",
    "DatasetBundle",
    "DatasetInfo",
    "RawData",
    "RowsDataset",
    "SplitResult",
    "Standardizer",
    "TensorDataset",
    "encode_labels",
    "infer_task",
    "list_datasets",
    "load_csv",
    "load_dataset",
    "load_npz",
    "make_blobs",
    "make_circles",
    "make_gaussians",
    "make_moons",
    "make_spirals",
    "make_xor",
    "one_hot",
    "read_csv",
    "read_npz",
    "split",
    "split_indices",
]
