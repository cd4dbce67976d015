"""Image-quality metrics: FID, KID, the class histogram and stacked-MNIST mode counts.

Metrics read samples; they never import the trainer. Features come from the shipped MNIST
classifier (:mod:`wganlab.metrics.evalnet`), so FID and KID here are in *our* feature space: they
compare runs of this project with each other, not with Inception-FIDs of papers.

* FID (Heusel et al. 2017): ||mu1 - mu2||^2 + tr C1 + tr C2 - 2 tr (C1^1/2 C2 C1^1/2)^1/2,
  the trace of the matrix square root taken from the eigenvalues of the symmetric PSD matrix
  C1^1/2 C2 C1^1/2 (no scipy sqrtm: it is unstable on singular covariances).
* KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3,
  averaged over 10 subsets of 1,000 when the sets are larger.
* Class histogram: KL(predicted class frequencies || uniform), in nats, and classes covered.
* Stacked MNIST (PacGAN protocol, Lin et al. 2018): each channel classified separately, a
  sample's mode is 100 a + 10 b + c; modes captured of 1000 and the KL to uniform.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from wganlab.data.images import as_nchw


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Frechet distance between Gaussians N(mu1, cov1) and N(mu2, cov2), in float64.

    Args:
        mu1, mu2: (D,) means; cov1, cov2: (D, D) symmetric PSD covariances.
    """
    mu1, mu2 = torch.as_tensor(mu1, dtype=torch.float64), torch.as_tensor(mu2, dtype=torch.float64)
    cov1, cov2 = torch.as_tensor(cov1, dtype=torch.float64), torch.as_tensor(cov2, dtype=torch.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"shapes do not match: means {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"covariances {tuple(cov1.shape)}, {tuple(cov2.shape)}")
    values, vectors = torch.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    middle = root1 @ cov2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt
    return max(float(distance), 0.0)


def _stats(features: torch.Tensor):
    x = features.double()
    return x.mean(0), torch.cov(x.T)


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between two (N, D) feature sets."""
    return frechet_distance(*_stats(a), *_stats(b))


def kid_from_features(a: torch.Tensor, b: torch.Tensor, subset_size: int = 1000, subsets: int = 10,
                      seed: int = 0) -> float:
    """KID between (N, D) and (M, D) features: the unbiased MMD^2 with the cubic polynomial kernel.

    Sets larger than ``subset_size`` are scored as the mean over ``subsets`` random subset
    pairs of that size (as Binkowski et al.), which keeps the kernel matrices small.
    """
    if max(len(a), len(b)) <= subset_size:
        return _mmd2_unbiased(a, b)
    g = torch.Generator().manual_seed(seed)
    values = [_mmd2_unbiased(a[torch.randperm(len(a), generator=g)[:subset_size]],
                             b[torch.randperm(len(b), generator=g)[:subset_size]]) for _ in range(subsets)]
    return float(np.mean(values))


def _mmd2_unbiased(a: torch.Tensor, b: torch.Tensor) -> float:
    x, y = a.double(), b.double()
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if n < 2 or m < 2:
        raise ValueError("KID needs at least 2 samples on each side")

    def kernel(p, q):
        return (p @ q.T / d + 1) ** 3

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                 + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())


def histogram_metrics(labels, n_classes: int) -> dict:
    """Classes covered, KL(histogram || uniform) in nats, and the counts, of integer labels."""
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long).reshape(-1), minlength=n_classes)
    p = counts[counts > 0].double() / counts.sum()
    return {"classes_covered": int((counts > 0).sum()), "n_classes": n_classes,
            "class_kl": float((p * torch.log(p * n_classes)).sum()), "class_counts": counts.tolist()}


def _unique_rows(keys: torch.Tensor):
    """(distinct keys, index of each distinct key's first row, inverse) of (N, K) keys."""
    distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((len(distinct),), len(keys), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys)), reduce="amin")
    return distinct, first, inverse


@torch.no_grad()
def classifier_outputs(images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 28, 28) images in [-1, 1] -> (N, 128) features and (N,) predicted digits."""
    from wganlab.metrics.evalnet import MnistClassifier, inference_features, load_classifier

    MnistClassifier.check_input(images)
    model = load_classifier()
    path = inference_features(model)
    # Stacked MNIST built from real digits repeats each digit image in many samples: classify
    # each distinct image once (generated samples have no repeats and lose only a sort).
    flat = images.float().flatten(1)
    # two random projections in float64 key each image: equal images get equal keys, and unequal
    # ones colliding in both is vanishingly unlikely (a row-wise torch.unique is a slow sort)
    keys = flat.double() @ torch.rand(flat.shape[1], 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, first, inverse = _unique_rows(keys)
    distinct = images[first].float()
    features, predictions = [], []
    for start in range(0, len(distinct), batch):
        f = path(distinct[start:start + batch].contiguous(memory_format=torch.channels_last))
        features.append(f)
        predictions.append(model.out(f).argmax(1))
    return torch.cat(features)[inverse], torch.cat(predictions)[inverse]


def stacked_outputs(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 28, 28) -> (N, 384) channel features side by side and (N,) modes 100a + 10b + c."""
    n = images.shape[0]
    features, digits = classifier_outputs(images.reshape(n * 3, 1, 28, 28))
    digits = digits.reshape(n, 3)
    return features.reshape(n, 3 * features.shape[1]), 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]


def as_images(samples, shape: tuple[int, ...], name: str = "samples") -> torch.Tensor:
    """Samples (N, *shape), or (N, H, W) / (N, prod shape), as float32 (N, *shape) in [-1, 1]; refuses NaN."""
    array = samples.detach().cpu() if torch.is_tensor(samples) else torch.as_tensor(np.asarray(samples))
    if array.dim() == 2 and array.shape[1] == int(np.prod(shape)):
        array = array.reshape(-1, *shape)
    elif array.dim() == 3 and tuple(array.shape[1:]) == tuple(shape[1:]) and shape[0] == 1:
        array = array[:, None]
    elif array.dim() == 4 and tuple(array.shape[1:]) != tuple(shape):
        array = torch.as_tensor(as_nchw(array.numpy(), name))
    if tuple(array.shape[1:]) != tuple(shape) or array.shape[0] < 2:
        raise ValueError(f"{name} have shape {tuple(array.shape)}; this data needs (N, {', '.join(map(str, shape))}) "
                         f"with N >= 2")
    if array.dtype == torch.uint8:
        array = array.float() / 127.5 - 1
    array = array.float()
    if not torch.isfinite(array).all():
        bad = int((~torch.isfinite(array)).flatten(1).any(1).sum())
        raise ValueError(f"{name} contain {bad} images with NaN or Inf; remove them or re-sample the generator")
    if array.min() < -1.01 or array.max() > 1.01:
        raise ValueError(f"{name} have pixels in [{float(array.min()):.3g}, {float(array.max()):.3g}]; "
                         f"images must be scaled to [-1, 1] (or be uint8)")
    return array


def _features(images: torch.Tensor, evaluation: str):
    """(features, labels or None, n_classes) of images in the data set's feature space."""
    if evaluation == "stacked-mnist":
        features, modes = stacked_outputs(images)
        return features, modes, 1000
    if evaluation in ("mnist", "mnist-features"):
        features, digits = classifier_outputs(images)
        return features, (digits if evaluation == "mnist" else None), 10
    return pixel_features(images), None, 0


def features_cache_dir() -> Path:
    """``$WGANLAB_CACHE_DIR/features``, else ``~/.cache/wganlab/features``."""
    root = os.environ.get("WGANLAB_CACHE_DIR")
    return (Path(root).expanduser() if root else Path("~/.cache/wganlab").expanduser()) / "features"


def reference_features(images: torch.Tensor, evaluation: str) -> torch.Tensor:
    """The held-out images' features, kept on disk for the evaluation network's spaces.

    speed: 2,000 held-out digits take ~0.5 s through the evaluation network on 2 cores, at the
    first evaluation of every image run; a seeded draw of 10,000 stacked held-out images ~2 s
    (its file is 15 MB, one per sample count and seed). The file is named by the SHA-256 of the images'
    bytes, their shape, the feature space and the network's shipped checksum, so a changed
    data set or network never reads old features (as clean-fid keeps reference statistics).
    A cache that cannot be read or written is skipped: the features are computed.
    """
    if evaluation not in ("mnist", "mnist-features", "stacked-mnist"):  # pixel features cost nothing
        return _features(images, evaluation)[0]
    from wganlab.metrics.evalnet import FEATURE_PATH, shipped_checksum
    from wganlab.util.files import atomic_write_bytes

    array = np.ascontiguousarray(images.float().numpy())
    digest = hashlib.sha256(f"{evaluation}:{shipped_checksum()}:{FEATURE_PATH}:{array.shape}".encode())
    digest.update(array.tobytes())
    path = features_cache_dir() / f"{digest.hexdigest()}.npy"
    try:
        return torch.from_numpy(np.load(path, allow_pickle=False))
    except (OSError, ValueError):
        pass
    features = _features(images, evaluation)[0]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, features.numpy())
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:
        pass
    return features


PIXEL_SIDE = 32  # pixel-space FID on images larger than this per side is taken at this side


def pixel_features(images: torch.Tensor) -> torch.Tensor:
    """The pixels of (N, C, H, W) images as (N, D) features, average-pooled to at most 32x32 first:
    FID needs a D x D covariance and its square root, which past ~3,000 dimensions costs minutes."""
    if images.dim() == 4 and max(images.shape[2:]) > PIXEL_SIDE:
        images = torch.nn.functional.adaptive_avg_pool2d(images, PIXEL_SIDE)
    return images.flatten(1)


def feature_space(evaluation: str, shape: tuple[int, ...]) -> str:
    """The name of the space FID and KID of ``evaluation`` data of per-sample ``shape`` live in."""
    space = {"mnist": "evalnet", "mnist-features": "evalnet", "stacked-mnist": "evalnet-per-channel"}
    if evaluation in space:
        return space[evaluation]
    if len(shape) == 3 and max(shape[1:]) > PIXEL_SIDE:
        return f"pixels-pooled-{PIXEL_SIDE}x{PIXEL_SIDE}"
    return "pixels"


def evaluate_images(samples, dataset, n_reference: int | None = None, seed: int = 0) -> dict:
    """FID, KID and (where a classifier knows the data) class or mode metrics of ``samples``.

    Args:
        samples: (N, *dataset.shape) images in [-1, 1].
        dataset: an :class:`~wganlab.data.images.ImageDataset`; its held-out split
            (``dataset.reference``) is the real side, its ``evaluation`` picks the features.
        n_reference: held-out images compared against (None: the whole test split, or
            for stacked MNIST as many stacked held-out images as there are samples).
    Returns:
        dict with ``fid``, ``kid``, ``feature_space``, ``n_samples``, ``n_reference`` and,
        for MNIST, ``classes_covered``, ``class_kl``, ``class_counts``; for stacked MNIST
        ``modes_captured`` (of 1000), ``mode_kl``.
    """
    images = as_images(samples, dataset.shape)
    evaluation = dataset.evaluation
    if n_reference is None and evaluation == "stacked-mnist":
        n_reference = len(images)  # stacked images are drawn, not stored: as many as the samples
    cache_key = (n_reference, seed)
    cache = dataset.__dict__.setdefault("_reference_features", {})
    if cache_key not in cache:
        cache[cache_key] = reference_features(dataset.reference(n_reference, seed), evaluation)
    real_features = cache[cache_key]
    features, labels, n_classes = _features(images, evaluation)
    result = {"n_samples": int(images.shape[0]), "n_reference": int(real_features.shape[0]),
              "feature_space": feature_space(evaluation, tuple(images.shape[1:])),
              "fid": fid_from_features(features, real_features), "kid": kid_from_features(features, real_features)}
    if labels is not None and evaluation == "stacked-mnist":
        hist = histogram_metrics(labels, n_classes)
        result.update(modes_captured=hist["classes_covered"], n_modes=1000, mode_kl=hist["class_kl"])
    elif labels is not None:
        result.update(histogram_metrics(labels, n_classes))
    return result
