"""Image data sets: MNIST, stacked MNIST, scikit-learn's 8x8 digits, a user's array or PNG folder.

Every source ends as float32 images (N, C, H, W) scaled to [-1, 1]; its shape and range
are checked on load, with an error that names the file and the fix.

Stacked MNIST (Metz et al. 2017, as PacGAN and VEEGAN use it): three MNIST digits drawn
independently become the R, G and B channels of one 3x28x28 image, so there are
10^3 = 1000 modes, labelled 100 a + 10 b + c.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wganlab.data.mnist import DataError, load_mnist
from wganlab.data.registry import DatasetEntry

ARRAY_SUFFIXES = (".npy", ".npz")


def to_unit_range(images: np.ndarray, name: str) -> torch.Tensor:
    """uint8 in [0, 255], or floats in [0, 1] or [-1, 1], to float32 in [-1, 1].

    Floats are taken as already in [-1, 1] when any value is negative, else as [0, 1].
    """
    array = np.asarray(images)
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32) / 127.5 - 1.0)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{name} holds dtype {array.dtype}; give uint8 pixels in [0, 255] or floats in [0, 1] or [-1, 1]")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{name} contains NaN or Inf pixels; clean the array first")
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high <= 1:
        return torch.from_numpy(array * 2.0 - 1.0)
    if low >= -1 and high <= 1:
        return torch.from_numpy(array)
    if np.issubdtype(np.asarray(images).dtype, np.integer) and low >= 0 and high <= 255:
        return torch.from_numpy(array / 127.5 - 1.0)
    raise DataError(f"{name} has pixel values in [{low:g}, {high:g}]; scale them to [0, 1], [-1, 1] or uint8 [0, 255]")


def as_nchw(array: np.ndarray, name: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in 1, 3 -> (N, C, H, W); (N, C, H, W) kept."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        if array.shape[1] in (1, 3):
            return array
        if array.shape[3] in (1, 3):
            return np.moveaxis(array, 3, 1)
    raise DataError(f"{name} holds shape {array.shape}; images must be (N, H, W), (N, C, H, W) or (N, H, W, C) "
                    f"with C = 1 or 3")


class ImageDataset:
    """A finite set of images sampled uniformly with replacement.

    Attributes:
        name: what the config's ``data`` said.
        images: (N, C, H, W) float32 in [-1, 1], the training images.
        labels: (N,) int64 class labels, or None.
        test_images / test_labels: the held-out split the metrics compare against, or None.
        evaluation: ``"mnist"`` (class histogram and FID in the shipped classifier's
            features), ``"stacked-mnist"`` (1000-mode PacGAN protocol) or ``"pixels"``
            (FID / KID on raw pixels: no classifier knows these images).
    """

    kind = "image"

    def __init__(self, name: str, images: torch.Tensor, labels=None, test_images=None, test_labels=None,
                 evaluation: str = "pixels"):
        if images.dim() != 4 or images.shape[0] < 2:
            raise DataError(f"{name}: need at least 2 images of shape (C, H, W), got {tuple(images.shape)}")
        self.name = name
        self.images = images.contiguous()
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.long)
        self.test_images = test_images
        self.test_labels = None if test_labels is None else torch.as_tensor(test_labels, dtype=torch.long)
        self.evaluation = evaluation

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    n_modes = 0  # no Gaussian modes: the toy mode metrics do not apply

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, C, H, W) training images drawn uniformly with replacement."""
        return self.images[torch.randint(0, len(self.images), (n,), generator=generator)]

    def reference(self, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """Held-out real images (the test split, else the training images), at most ``n``."""
        pool = self.test_images if self.test_images is not None else self.images
        if n is None or n >= len(pool):
            return pool
        return pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]]


class StackedMnist(ImageDataset):
    """Three independent MNIST digits as the channels of one (3, 28, 28) image: 1000 modes."""

    def __init__(self, digits: ImageDataset, test_digits: torch.Tensor | None = None, test_labels=None,
                 n_reference: int = 10_000):
        super().__init__("stacked-mnist", digits.images, digits.labels, evaluation="stacked-mnist")
        if test_digits is None:  # the digits' own held-out split, when they have one
            test_digits, test_labels = digits.test_images, digits.test_labels
        self._test_digits = test_digits
        self._test_digit_labels = None if test_labels is None else torch.as_tensor(test_labels, dtype=torch.long)
        self.n_reference = n_reference

    @property
    def shape(self) -> tuple[int, ...]:
        return (3, 28, 28)

    @staticmethod
    def stack(digits: torch.Tensor, labels, n: int, generator: torch.Generator | None = None):
        """n stacked images (n, 3, 28, 28) from (M, 1, 28, 28) digits, and their labels 100a + 10b + c."""
        index = torch.randint(0, len(digits), (n, 3), generator=generator)
        images = digits[index.reshape(-1), 0].reshape(n, 3, 28, 28)
        stacked_labels = None
        if labels is not None:
            lab = torch.as_tensor(labels, dtype=torch.long)[index]
            stacked_labels = 100 * lab[:, 0] + 10 * lab[:, 1] + lab[:, 2]
        return images, stacked_labels

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.stack(self.images, None, n, generator)[0]

    def reference(self, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """Stacked images built from the held-out digits with a fixed seed."""
        pool = self._test_digits if self._test_digits is not None else self.images
        return self.stack(pool, None, n or self.n_reference, torch.Generator().manual_seed(seed))[0]


def mnist_dataset(data_dir: str | None = None) -> ImageDataset:
    train, test = load_mnist(data_dir or None, "train"), load_mnist(data_dir or None, "test")
    return ImageDataset("mnist", to_unit_range(train.images[:, None], "MNIST train"), train.labels,
                        to_unit_range(test.images[:, None], "MNIST test"), test.labels, evaluation="mnist")


def stacked_mnist_dataset(data_dir: str | None = None) -> StackedMnist:
    return StackedMnist(mnist_dataset(data_dir))


def digits_dataset() -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, pixels 0..16), as (N, 1, 8, 8)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("data 'digits' needs scikit-learn; pip install scikit-learn") from None
    bunch = load_digits()
    images = torch.from_numpy((bunch.images / 8.0 - 1.0).astype(np.float32))[:, None]
    return ImageDataset("digits", images, bunch.target, evaluation="pixels")


def array_dataset(path: str | Path) -> ImageDataset:
    """A user's ``.npy`` array, or ``.npz`` with an ``images`` (or single) array and optional ``labels``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    labels = None
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.keys())
                key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise DataError(f"{path} holds arrays {keys}; name the images array 'images' "
                                    f"(and the labels 'labels')")
                array = loaded[key]
                labels = loaded["labels"] if "labels" in keys else None
        else:
            array = loaded
    except DataError:
        raise
    except Exception as error:  # numpy raises several types for damaged files
        from wganlab.util.files import array_file_problem

        raise DataError(array_file_problem(path, error)) from None
    array = as_nchw(array, str(path))
    if len(array) < MIN_IMAGES or min(array.shape[2:]) < MIN_IMAGE_SIDE:
        raise DataError(f"{path} holds {len(array)} images of {array.shape[3]}x{array.shape[2]} pixels; training and "
                        f"its metrics need at least {MIN_IMAGES} images of {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
    images = to_unit_range(array, str(path))
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{path}: {len(labels)} labels for {len(images)} images")
    return ImageDataset(str(path), images, labels, evaluation=_evaluation_for(tuple(images.shape[1:])))


# the smallest images the nets and metrics take, and the fewest of them
MIN_IMAGE_SIDE, MIN_IMAGES = 4, 4
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _png_pixels(image, colour: bool) -> np.ndarray:
    """One PNG as float32 in [0, 1], (H, W) grey or (H, W, 3) colour, whatever its mode: 16-bit
    scaled by 65535, palettes expanded, alpha composited onto black (a transparent pixel is no ink)."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise DataError(f"{image.filename} holds 32-bit integer pixels outside 0..65535; save it as 8- or 16-bit")
        grey = (values / 65535.0).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=2) if colour else grey
    if mode == "F":
        raise DataError(f"{image.filename} holds floating-point pixels (mode F); save it as an 8- or 16-bit PNG")
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0  # 1, L, LA, P, PA, RGB, RGBA, ...
    rgb = rgba[..., :3] * rgba[..., 3:4]
    if colour:
        return rgb
    return rgb[..., 0]  # grey modes: the three channels are equal


def png_folder_dataset(folder: str | Path) -> ImageDataset:
    """Every ``*.png`` in ``folder`` (all of one size), sorted by name, in any mode Pillow reads:
    grey when every file is grey, else colour."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder).expanduser()
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DataError(f"{folder} holds no .png files; give a folder of PNG images or a .npy/.npz array")
    if len(files) < MIN_IMAGES:
        raise DataError(f"{folder} holds {len(files)} PNG images; training and its metrics need at least "
                        f"{MIN_IMAGES}")
    opened = []
    try:
        for file in files:
            try:
                opened.append(Image.open(file))
                opened[-1].load()
            except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
                raise DataError(f"cannot read {file} as PNG ({' '.join(str(error).split())[:120]}); "
                                f"remove or repair it") from None
        colour = any(image.mode not in _GREY_MODES and not _is_grey_palette(image) for image in opened)
        arrays = []
        for file, image in zip(files, opened):
            arrays.append(_png_pixels(image, colour))
            if arrays[-1].shape != arrays[0].shape:
                raise DataError(f"{file} is {arrays[-1].shape[1]}x{arrays[-1].shape[0]}, but {files[0].name} is "
                                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; all images must have one size")
    finally:
        for image in opened:
            image.close()
    height, width = arrays[0].shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise DataError(f"{folder} holds {width}x{height} images; the nets and metrics need at least "
                        f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels")
    stacked = np.stack(arrays)
    images = to_unit_range(as_nchw(stacked, str(folder)), str(folder))
    return ImageDataset(str(folder), images, evaluation=_evaluation_for(tuple(images.shape[1:])))


def _is_grey_palette(image) -> bool:
    if image.mode not in ("P", "PA"):
        return False
    rgb = np.asarray(image.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


# the built-in image sets (a .npy/.npz file or a PNG folder is read by make_image_dataset)
DATASETS = (
    DatasetEntry("mnist", "image", (1, 28, 28), "MNIST digits (wganlab data fetch mnist)",
                 lambda data_dir="": mnist_dataset(data_dir)),
    DatasetEntry("stacked-mnist", "image", (3, 28, 28), "three MNIST digits as RGB channels: 1000 modes",
                 lambda data_dir="": stacked_mnist_dataset(data_dir)),
    DatasetEntry("digits", "image", (1, 8, 8), "scikit-learn's 8x8 digits (bundled, no download)",
                 lambda data_dir="": digits_dataset()),
)
IMAGE_DATASETS = tuple(entry.name for entry in DATASETS)


def _evaluation_for(shape: tuple[int, ...]) -> str:
    # A user's images are scored in pixel space, whatever their size: the shipped classifier's
    # features fit MNIST digits, and nothing says that a user's 28x28 images are digits.
    return "pixels"


def is_image_source(data: str) -> bool:
    """True when ``data`` names a built-in image set or looks like a path to images."""
    return data in IMAGE_DATASETS or data.endswith(ARRAY_SUFFIXES) or "/" in data or Path(data).expanduser().is_dir()


def make_image_dataset(data: str, data_dir: str = "") -> ImageDataset:
    for entry in DATASETS:
        if entry.name == data:
            return entry.build(data_dir=data_dir)
    path = Path(data).expanduser()
    if data.endswith(ARRAY_SUFFIXES):
        return array_dataset(path)
    if path.is_dir():
        return png_folder_dataset(path)
    raise DataError(f"data {data!r} is neither a built-in set nor an existing .npy/.npz file or PNG folder")


def image_shape(data: str, data_dir: str = "") -> tuple[int, ...]:
    """The per-sample shape of an image source, without loading the built-in sets."""
    known = {entry.name: entry.shape for entry in DATASETS}
    return known[data] if data in known else make_image_dataset(data, data_dir).shape
