import json
import math

import numpy as np
import pytest
import torch

from wganlab.data.images import StackedMnist, mnist_dataset
from wganlab.data.mnist import mnist_available
from wganlab.metrics.images import (
    as_images,
    classifier_outputs,
    evaluate_images,
    fid_from_features,
    frechet_distance,
    histogram_metrics,
    kid_from_features,
    stacked_outputs,
)

real_mnist = pytest.mark.skipif(not mnist_available(), reason="MNIST not fetched: run 'wganlab data fetch mnist'")


def _rotation(d, seed=0):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_frechet_distance_known_answer_with_commuting_and_singular_covariances():
    # Same eigenvectors: FD = |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2, also when a has zeros.
    a = torch.tensor([4.0, 1.0, 0.0, 9.0, 0.0], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0, 4.0, 0.0, 0.0], dtype=torch.float64)
    q = _rotation(5)
    mu1, mu2 = torch.zeros(5), torch.tensor([1.0, 2.0, 0.0, 0.0, -2.0])
    expected = float(mu2.pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())  # 9 + 1 + 4 + 9 = 23
    assert expected == 23.0
    got = frechet_distance(mu1, q @ torch.diag(a) @ q.T, mu2, q @ torch.diag(b) @ q.T)
    assert abs(got - expected) < 1e-6  # sqrt of a ~1e-15 eigenvalue error is ~1e-7


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_length():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    shift = torch.full((16,), 0.5)
    assert abs(fid_from_features(x, x)) < 1e-8
    assert abs(fid_from_features(x, x + shift) - 16 * 0.25) < 1e-8


def test_kid_matches_a_direct_unbiased_mmd_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 3, generator=g, dtype=torch.float64), torch.randn(9, 3, generator=g, dtype=torch.float64)

    def k(p, q):
        return (float(p @ q) / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(12) for j in range(12) if i != j) / (12 * 11)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(12) for j in range(9)) / (12 * 9)
    assert abs(kid_from_features(x, y) - (xx + yy - 2 * xy)) < 1e-9
    big = torch.randn(2000, 8, generator=g)
    other = torch.randn(2000, 8, generator=g)
    assert abs(kid_from_features(big, other)) < 0.01  # unbiased: about 0 for one distribution
    assert kid_from_features(big, other + 1.0) > 0.5


def test_class_histogram_kl_and_coverage():
    uniform = histogram_metrics(torch.arange(100) % 10, 10)
    assert uniform["classes_covered"] == 10 and abs(uniform["class_kl"]) < 1e-12
    collapsed = histogram_metrics(torch.full((50,), 6), 10)
    assert collapsed["classes_covered"] == 1 and math.isclose(collapsed["class_kl"], math.log(10))
    assert collapsed["class_counts"][6] == 50
    half = histogram_metrics(torch.tensor([0, 1] * 10), 4)
    assert math.isclose(half["class_kl"], math.log(2))


def test_shipped_classifier_loads_after_its_checksum_and_refuses_a_wrong_one():
    from wganlab.metrics.evalnet import WEIGHTS_NAME, _weights_dir, load_classifier

    model = load_classifier()
    assert sum(p.numel() for p in model.parameters()) < 500_000  # the file stays well under 2 MB
    assert (_weights_dir() / WEIGHTS_NAME).stat().st_size < 2_000_000
    with pytest.raises(ValueError, match="SHA-256"):
        load_classifier(_weights_dir() / WEIGHTS_NAME, checksum="0" * 64)


def test_the_inference_path_gives_the_classifiers_features_and_classes():
    from wganlab.metrics.evalnet import inference_features, load_classifier

    model = load_classifier()
    images = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    images[:100] = torch.where(images[:100] > 0.6, 1.0, -1.0)  # sparse strokes, as digits
    with torch.no_grad():
        expected = model.features(images)
        fast = inference_features(model)(images.contiguous(memory_format=torch.channels_last))
    assert inference_features(model) is inference_features(model)  # made once
    assert expected.abs().max() > 1 and torch.allclose(fast, expected, rtol=1e-4, atol=1e-4)
    features, classes = classifier_outputs(images)
    assert torch.allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(classes, model.out(expected).argmax(1))
    with pytest.raises(ValueError, match=r"expects \(B, 1, 28, 28\)"):
        classifier_outputs(torch.zeros(2, 1, 27, 27))


def test_a_single_stacked_triple_covers_one_mode():
    image = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    same = image.expand(200, 3, 28, 28)
    _, modes = stacked_outputs(same)
    assert len(modes.unique()) == 1


def test_image_samples_are_checked():
    with pytest.raises(ValueError, match="NaN"):
        as_images(torch.full((4, 1, 28, 28), float("nan")), (1, 28, 28))
    with pytest.raises(ValueError, match="\\[-1, 1\\]"):
        as_images(torch.full((4, 1, 28, 28), 3.0), (1, 28, 28))
    with pytest.raises(ValueError, match="needs \\(N, 1, 28, 28\\)"):
        as_images(torch.zeros(4, 2, 2), (1, 28, 28))
    assert as_images(np.zeros((3, 784), np.float32), (1, 28, 28)).shape == (3, 1, 28, 28)


@real_mnist
def test_held_out_digits_are_classified_cover_ten_classes_and_score_near_zero():
    digits = mnist_dataset()
    _, predicted = classifier_outputs(digits.test_images)
    assert (predicted == digits.test_labels).double().mean() >= 0.985
    result = evaluate_images(digits.test_images, digits)
    assert result["classes_covered"] == 10 and result["class_kl"] < 0.05
    assert result["fid"] < 1e-6  # the held-out set against itself
    # real training digits sit close; the same digits moved 5 pixels sit far
    train = evaluate_images(digits.images[:1000], digits)
    moved = evaluate_images(torch.roll(digits.images[:1000], 5, dims=3), digits)
    assert train["fid"] < 0.1 * moved["fid"]
    assert abs(train["kid"]) < 0.05 * moved["kid"]  # unbiased: about 0, either sign
    collapsed = evaluate_images(digits.test_images[digits.test_labels == 6], digits)
    assert collapsed["classes_covered"] <= 2 and collapsed["class_kl"] > 2.0  # log 10 = 2.30


@real_mnist
def test_stacked_mnist_from_real_digits_covers_all_modes_and_one_triple_covers_one():
    stacked = StackedMnist(mnist_dataset())
    assert stacked._test_digits is not None and len(stacked._test_digits) == len(stacked._test_digit_labels)
    digits = stacked._test_digits
    images, labels = StackedMnist.stack(digits, stacked._test_digit_labels, 10_000, torch.Generator().manual_seed(3))
    result = evaluate_images(images, stacked, n_reference=1000)
    assert result["modes_captured"] >= 990 and result["mode_kl"] < 0.15
    # one triple (1, 2, 3), drawn from many different real images of those digits
    test_labels = stacked._test_digit_labels
    pools = [digits[test_labels == d] for d in (1, 2, 3)]
    g = torch.Generator().manual_seed(0)
    triple = torch.cat([p[torch.randint(0, len(p), (1000,), generator=g)] for p in pools], dim=1)
    _, modes = stacked_outputs(triple)
    counts = torch.bincount(modes, minlength=1000)
    assert counts.argmax() == 123 and counts[123] >= 950


def test_eval_command_scores_image_samples(tmp_path, capsys):
    from conftest import write_mnist_fixture

    from wganlab.cli import main

    arrays = write_mnist_fixture(tmp_path / "mnist")
    samples = arrays[("test", "images")].astype(np.float32)[:, None] / 127.5 - 1
    np.save(tmp_path / "s.npy", samples)
    assert main(["eval", "--data", "mnist", "--data-dir", str(tmp_path / "mnist"), "--samples", str(tmp_path / "s.npy")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fid"] < 1e-6 and result["n_samples"] == 20 and result["feature_space"] == "evalnet"
    np.save(tmp_path / "bad.npy", np.zeros((5, 3)))
    assert main(["eval", "--data", "mnist", "--data-dir", str(tmp_path / "mnist"), "--samples", str(tmp_path / "bad.npy")]) == 2
    assert "needs (N, 1, 28, 28)" in capsys.readouterr().err


def test_reference_features_are_kept_on_disk_by_content(tmp_path, monkeypatch):
    """The held-out features in the evaluation network's space are read back from a file named
    by the images' bytes: equal on a second call, another file for other images, and a damaged
    file is recomputed rather than read."""
    import torch

    from wganlab.metrics.images import _features, features_cache_dir, reference_features

    monkeypatch.setenv("WGANLAB_CACHE_DIR", str(tmp_path))
    images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    first = reference_features(images, "mnist")
    files = list(features_cache_dir().glob("*.npy"))
    assert len(files) == 1 and features_cache_dir().parent == tmp_path
    assert torch.equal(first, _features(images, "mnist")[0])

    def not_again(*args):
        raise AssertionError("the features were computed again")

    with monkeypatch.context() as patch:
        patch.setattr("wganlab.metrics.images._features", not_again)
        assert torch.equal(reference_features(images, "mnist"), first)  # read from the file
    files[0].write_bytes(files[0].read_bytes()[:100] + b"\0" * 50)  # damaged: computed again, and rewritten
    assert torch.equal(reference_features(images, "mnist"), first)
    assert torch.equal(reference_features(images, "mnist"), first)
    reference_features(images.flip(0), "mnist")
    assert len(list(features_cache_dir().glob("*.npy"))) == 2
    reference_features(images, "pixels")  # pixel features are not kept
    assert len(list(features_cache_dir().glob("*.npy"))) == 2
    stacked = images[:30].reshape(10, 3, 28, 28)  # stacked references too (10,000 draws: ~2 s each time)
    kept = reference_features(stacked, "stacked-mnist")
    assert len(list(features_cache_dir().glob("*.npy"))) == 3 and kept.shape == (10, 384)
    with monkeypatch.context() as patch:
        patch.setattr("wganlab.metrics.images._features", not_again)
        assert torch.equal(reference_features(stacked, "stacked-mnist"), kept)
