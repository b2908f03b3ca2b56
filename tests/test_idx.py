import gzip

import numpy as np
import pytest

from bench.datasets.idx import read_idx
from bench.errors import BenchError
from idx_files import idx_bytes, write_idx


@pytest.mark.parametrize("compress", [False, True])
def test_reads_images_and_labels(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 3], dtype=np.uint8)
    got_images = read_idx(write_idx(tmp_path / "img", images, compress=compress), ndim=3)
    got_labels = read_idx(write_idx(tmp_path / "lab", labels, compress=compress), ndim=1)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"  # no .gz suffix, gzip content
    path.write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 3]))))
    np.testing.assert_array_equal(read_idx(path, ndim=1), [1, 2, 3])


def test_truncated_data_names_the_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((5, 28, 28)))[:-100])
    with pytest.raises(BenchError, match=r"t10k-images-idx3-ubyte is truncated.*3920 bytes.*3820"):
        read_idx(path, ndim=3)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((5, 28, 28))))[:-30])
    with pytest.raises(BenchError, match=r"train-images-idx3-ubyte.gz is not a complete gzip file"):
        read_idx(path, ndim=3)


def test_wrong_magic(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x12\x34\x08\x01" + idx_bytes(np.zeros(3))[4:])
    with pytest.raises(BenchError, match=r"labels has a wrong magic number 0x12340801"):
        read_idx(path, ndim=1)


def test_swapped_images_and_labels(tmp_path):
    labels = write_idx(tmp_path / "labels", np.zeros(10))
    with pytest.raises(BenchError, match=r"1-dimensional array where images.*swapped"):
        read_idx(labels, ndim=3)


@pytest.mark.parametrize("content", [b"", b"\x00\x00"])
def test_empty_or_tiny_file(tmp_path, content):
    path = tmp_path / "empty"
    path.write_bytes(content)
    with pytest.raises(BenchError, match=r"empty or too short"):
        read_idx(path, ndim=1)


def test_missing_file(tmp_path):
    with pytest.raises(BenchError, match=r"cannot read .*nope"):
        read_idx(tmp_path / "nope", ndim=1)
