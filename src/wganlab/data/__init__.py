"""Data sources. The built-in toy distributions are the default and need no download.

:func:`make_dataset` is the one entry point the trainer calls: every source it returns has
``kind`` ("toy" or "image"), ``shape`` (per sample), ``dim`` (the product) and
``sample(n, generator) -> (n, *shape)`` tensor (images in [-1, 1]).
"""

from wganlab.data.images import IMAGE_DATASETS, ImageDataset, StackedMnist, image_shape, is_image_source, make_image_dataset
from wganlab.data.mnist import DataError
from wganlab.data.toy import TOY_DATASETS, GaussianMixture, SwissRoll, make_toy


def make_dataset(config):
    """The data set a config names in ``data`` (a built-in name, a .npy/.npz file or a PNG folder)."""
    if config.data in TOY_DATASETS:
        return make_toy(config.data, radius=config.radius, sigma=config.sigma, spacing=config.spacing)
    return make_image_dataset(config.data, getattr(config, "data_dir", ""))


def data_shape(config) -> tuple[int, ...]:
    """The per-sample shape ``make_dataset(config)`` would give, without loading a built-in set."""
    if config.data in TOY_DATASETS:
        return make_toy(config.data, radius=config.radius, sigma=config.sigma, spacing=config.spacing).shape
    return image_shape(config.data, getattr(config, "data_dir", ""))


__all__ = ["TOY_DATASETS", "IMAGE_DATASETS", "DataError", "GaussianMixture", "ImageDataset", "StackedMnist",
           "SwissRoll", "data_shape", "is_image_source", "make_dataset", "make_toy"]
