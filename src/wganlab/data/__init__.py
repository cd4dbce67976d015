"""Data sources. The built-in toy distributions are the default and need no download.

:func:`make_dataset` is the one entry point the trainer calls: every source it returns has
``kind`` ("toy" or "image"), ``shape`` (per sample), ``dim`` (the product) and
``sample(n, generator) -> (n, *shape)`` tensor (images in [-1, 1]).
"""

from pathlib import Path

from wganlab.data import images, toy
from wganlab.data.images import IMAGE_DATASETS, ImageDataset, StackedMnist, image_shape, is_image_source, make_image_dataset
from wganlab.data.mnist import DataError
from wganlab.data.registry import DatasetEntry
from wganlab.data.toy import TOY_DATASETS, GaussianMixture, SwissRoll, make_toy

# name -> entry of every built-in data set (toy points, then images)
DATASETS: dict[str, DatasetEntry] = {entry.name: entry for entry in toy.DATASETS + images.DATASETS}


def dataset_params() -> dict:
    """Config key -> Param, over every built-in data set (a key shared by several sets once)."""
    return {p.key: p for entry in DATASETS.values() for p in entry.params}


def _build(entry: DatasetEntry, config):
    if entry.kind == "toy":
        return entry.build(**{p.key: getattr(config, p.key) for p in entry.params})
    return entry.build(data_dir=getattr(config, "data_dir", ""))


def make_dataset(config):
    """The data set a config names in ``data``: a built-in name, a .npy/.npz file (an (N, D)
    array is a set of points, an (N, H, W[, C]) or (N, C, H, W) array a set of images) or a
    folder of PNGs."""
    if config.data in DATASETS:
        return _build(DATASETS[config.data], config)
    points = _points_file(config.data)
    if points is not None:
        return points
    return make_image_dataset(config.data, getattr(config, "data_dir", ""))


def _points_file(data: str):
    """An ``ArrayDataset`` when ``data`` is a .npy file (or one-array .npz) holding an (N, D) array, else None."""
    import numpy as np

    from wganlab.data.array import ArrayDataset

    path = Path(data).expanduser()
    if not (data.endswith((".npy", ".npz")) and path.is_file()):
        return None
    try:
        with open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                if len(loaded.files) != 1:
                    return None  # images with labels: the image loader reads and checks it
                loaded = loaded[loaded.files[0]]
            array = np.asarray(loaded)
    except Exception:  # the image loader reports what is wrong with the file
        return None
    if array.ndim != 2:
        return None
    try:
        return ArrayDataset(array, name=str(path))
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None


def holds_images(data: str) -> bool:
    """True when ``data`` names a built-in image set, a folder, or a .npy/.npz file of images
    (an array of 3 or more dimensions; only the file's header is read)."""
    import numpy as np

    if data in DATASETS:
        return DATASETS[data].kind == "image"
    path = Path(data).expanduser()
    if path.is_dir():
        return True
    if not (data.endswith((".npy", ".npz")) and path.is_file()):
        return False
    try:
        if data.endswith(".npy"):
            return np.load(path, mmap_mode="r", allow_pickle=False).ndim >= 3
        with np.load(path, allow_pickle=False) as archive:
            key = "images" if "images" in archive.files else archive.files[0]
            return archive[key].ndim >= 3
    except Exception:  # the loaders report what is wrong with the file
        return False


def data_shape(config) -> tuple[int, ...]:
    """The per-sample shape ``make_dataset(config)`` would give, without loading a built-in set."""
    if config.data in DATASETS:
        entry = DATASETS[config.data]
        return _build(entry, config).shape if entry.kind == "toy" else entry.shape
    points = _points_file(config.data)
    if points is not None:
        return points.shape
    return image_shape(config.data, getattr(config, "data_dir", ""))


__all__ = ["DATASETS", "TOY_DATASETS", "DatasetEntry", "dataset_params", "IMAGE_DATASETS", "DataError", "GaussianMixture", "ImageDataset", "StackedMnist",
           "SwissRoll", "data_shape", "holds_images", "is_image_source", "make_dataset", "make_toy"]
