import numpy as np
import pytest
import torch

from bench.datasets import DataSearch, load_dataset, resolve_auto, validation_split
from bench.datasets.locate import cache_dir
from bench.errors import BenchError, DatasetNotFoundError
from idx_files import write_fake_mnist, write_idx


def search(data_dir=None, env=None):
    return DataSearch(data_dir, download=False, env=env or {})


def test_flat_layout_with_gz(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=30, n_test=10)
    ds = load_dataset("mnist", search(tmp_path))
    assert ds.train.images.shape == (30, 1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert ds.test.labels.dtype == torch.int64 and len(ds.test) == 10
    assert ds.source == str(tmp_path / "mnist")


def test_torchvision_layout(tmp_path):
    write_fake_mnist(tmp_path / "FashionMNIST" / "raw", compress=False)
    ds = load_dataset("fashion-mnist", search(tmp_path))
    assert ds.classes[0] == "T-shirt/top" and len(ds.train) == 40


def test_lookup_order_option_then_env_then_cache(tmp_path, monkeypatch):
    option, env, cache = tmp_path / "option", tmp_path / "env", tmp_path / "xdg"
    write_fake_mnist(option / "mnist", n_train=10)
    write_fake_mnist(env / "mnist", n_train=20)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    write_fake_mnist(cache_dir() / "mnist", n_train=30)
    env_vars = {"CNNBENCH_DATA": str(env)}
    assert len(load_dataset("mnist", search(option, env_vars)).train) == 10
    assert len(load_dataset("mnist", search(None, env_vars)).train) == 20
    assert len(load_dataset("mnist", search(None, {})).train) == 30


def test_incomplete_folder_is_skipped_for_a_later_root(tmp_path):
    write_fake_mnist(tmp_path / "a" / "mnist", n_train=10)
    (tmp_path / "a" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    write_fake_mnist(tmp_path / "b" / "mnist", n_train=20)
    ds = load_dataset("mnist", search(tmp_path / "a", {"CNNBENCH_DATA": str(tmp_path / "b")}))
    assert len(ds.train) == 20


def test_missing_dataset_says_where_to_put_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", search(tmp_path))
    message = str(err.value)
    assert str(tmp_path) in message and "--data-dir" in message and "CNNBENCH_DATA" in message
    assert "train-images-idx3-ubyte" in message


def test_mismatched_counts(tmp_path):
    folder = tmp_path / "mnist"
    write_fake_mnist(folder, n_train=30)
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(29))  # preferred over the .gz
    with pytest.raises(BenchError, match=r"30 images but 29 labels"):
        load_dataset("mnist", search(tmp_path))


def test_unknown_dataset_lists_known():
    known = r"mnist, fashion-mnist, kmnist, cifar10, digits or folder:PATH"
    with pytest.raises(BenchError, match=r"unknown dataset 'svhn'.*" + known):
        load_dataset("svhn", search())


def test_auto_falls_back_to_digits_and_says_why(tmp_path):
    ds, reason = resolve_auto(search(tmp_path))
    assert ds.name == "digits" and "mnist not found" in reason


def test_auto_prefers_mnist(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    ds, reason = resolve_auto(search(tmp_path))
    assert ds.name == "mnist" and reason is None


def test_auto_does_not_hide_a_corrupt_mnist(tmp_path):
    files = write_fake_mnist(tmp_path / "mnist")
    files["test_images"].write_bytes(b"")
    with pytest.raises(BenchError, match="empty"):
        resolve_auto(search(tmp_path))


def test_digits_is_28x28_with_fixed_stratified_split():
    a, b = load_dataset("digits", search()), load_dataset("digits", search())
    assert a.train.images.shape == (1437, 1, 28, 28) and len(a.test) == 360
    assert torch.equal(a.test.images, b.test.images)
    counts = torch.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class


def test_validation_split_is_fixed_stratified_and_disjoint():
    ds = load_dataset("digits", search())
    train, val = validation_split(ds.train, 0.1)
    train2, val2 = validation_split(ds.train, 0.1)
    assert torch.equal(val.images, val2.images)
    assert len(train) + len(val) == len(ds.train) and len(val) == 144
    per_class = torch.bincount(val.labels, minlength=10)
    assert per_class.max() - per_class.min() <= 1
    assert validation_split(ds.train, 0.0) == (ds.train, None)


@pytest.mark.slow
def test_real_mnist_matches_its_published_statistics(mnist_dir):
    ds = load_dataset("mnist", search(mnist_dir))
    assert torch.bincount(ds.train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert len(ds.test) == 10000
    assert round(ds.pixel_stats()[0], 4) == 0.1307


@pytest.mark.slow
def test_real_fashion_mnist_is_balanced(mnist_dir):
    ds = load_dataset("fashion-mnist", search(mnist_dir))
    assert torch.bincount(ds.train.labels).tolist() == [6000] * 10
    assert torch.bincount(ds.test.labels).tolist() == [1000] * 10
