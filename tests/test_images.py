"""Image data: sources, the Grain training stream (determinism, exact resume, any rows of
any step) and the evaluation batches."""

import gzip
import pathlib
import struct

import numpy as np
import pytest

from ncjax.data import images


@pytest.fixture(scope="module")
def digits():
  return images.digits()


def test_digits_is_the_real_dataset(digits):
  assert (len(digits.train), len(digits.test), digits.num_classes) == (1297, 500, 10)
  assert digits.shape == (8, 8, 1)
  labels = [digits.train[i]["label"] for i in range(len(digits.train))]
  assert set(labels) == set(range(10))


def test_digits_in_mnists_frame_are_the_same_digits_upsampled_and_padded(digits):
  framed = images.load("digits_28")
  assert framed.shape == (28, 28, 1) and len(framed.train) == len(digits.train)
  np.testing.assert_array_equal(framed.test.labels, digits.test.labels)
  image = framed.train.images[0, ..., 0]
  assert not image[:4].any() and not image[-4:].any() and not image[:, :4].any()
  assert image.min() >= 0 and image.max() <= 255
  # Averaging each 5 x 5 block of the 20 x 20 digit gives back the 8 x 8 original's
  # layout (bilinear upsampling by 2.5 keeps every 2 x 2 block's mass in place).
  blocks = image[4:24, 4:24].reshape(4, 5, 4, 5).mean((1, 3))
  original = digits.train.images[0, ..., 0].reshape(4, 2, 4, 2).mean((1, 3)) * 255 / 16
  assert np.corrcoef(blocks.ravel(), original.ravel())[0, 1] > 0.95


def _batches(data, seed, count, start=0, augment=True):
  elements = images.train_elements(data, seed=seed, augment=augment)
  return [images.train_rows(data, elements, 32, step, slice(None)) for step in range(start, start + count)]


def test_training_batches_are_seeded_and_resume_exactly():
  data = images.synthetic()
  first = _batches(data, seed=1, count=12)
  again = _batches(data, seed=1, count=12)
  other = _batches(data, seed=2, count=12)
  for a, b in zip(first, again, strict=True):
    np.testing.assert_array_equal(a.inputs, b.inputs)
  assert not np.array_equal(first[0].inputs, other[0].inputs)
  resumed = _batches(data, seed=1, count=7, start=5)  # a fresh stream from step 5
  for a, b in zip(first[5:], resumed, strict=True):
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_any_rows_of_a_step_are_those_rows_of_its_whole_batch():
  """What a process reads for its devices: rows 8..24 of step t, alone, on 3 threads."""
  import concurrent.futures

  data = images.synthetic()
  whole = _batches(data, seed=3, count=3, start=9)
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    elements = images.train_elements(data, seed=3, augment=True)
    part = [images.train_rows(data, elements, 32, step, slice(8, 24), pool)
            for step in range(9, 12)]
  for a, b in zip(whole, part, strict=True):
    np.testing.assert_array_equal(a.inputs[8:24], b.inputs)
    np.testing.assert_array_equal(a.labels[8:24], b.labels)


def test_each_epoch_is_a_new_permutation_of_the_training_set():
  data = images.synthetic(train_size=64)
  batches = _batches(data, seed=0, count=4, augment=False)  # 2 epochs of 32
  epochs = [np.concatenate([b.labels for b in batches[i:i + 2]]) for i in (0, 2)]
  for labels in epochs:
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(np.arange(64) % 4))
  flat = [np.concatenate([b.inputs.reshape(32, -1)[:, 0] for b in batches[i:i + 2]])
          for i in (0, 2)]
  assert not np.array_equal(flat[0], flat[1])


def test_augmentation_crops_and_flips_within_the_padding():
  image = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
  out = images._augment({"image": image, "label": 0}, np.random.default_rng(0))["image"]
  assert out.shape == image.shape
  # every pixel is an original pixel or zero padding
  assert np.isin(out, np.r_[image.ravel(), 0.0]).all()


def test_eval_batches_cover_the_split_once_with_masked_padding(digits):
  batches = list(images.eval_batches(digits, "test", 128))
  assert [b.inputs.shape[0] for b in batches] == [128] * 4
  assert sum(b.mask.sum() for b in batches) == 500
  labels = np.concatenate([b.labels[b.mask] for b in batches])
  np.testing.assert_array_equal(labels, [digits.test[i]["label"] for i in range(500)])
  inputs = np.concatenate([b.inputs[b.mask] for b in batches])
  train = np.concatenate([b.inputs[b.mask] for b in images.eval_batches(digits, "train", 650)])
  np.testing.assert_allclose(train.mean((0, 1, 2)), 0.0, atol=1e-4)  # normalised with train
  assert inputs.shape == (500, 8, 8, 1)


def test_tfds_mock_data_through_data_source_and_grain(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=40):
    data = images.load("cifar10")
    assert data.shape == (32, 32, 3) and data.num_classes == 10
    batch = _batches(data, seed=0, count=1)
    assert batch[0].inputs.shape == (32, 32, 32, 3) and batch[0].inputs.dtype == np.float32


def test_unprepared_tfds_dataset_names_it_and_how_to_prepare(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(FileNotFoundError, match=r"'cifar10' is not prepared in .*tfds build"):
    images.load("cifar10", data_dir=str(tmp_path))


def test_class_subset_is_relabelled_in_the_given_order_and_few_shot(digits):
  data = images.load("digits", classes=(7, 2), train_per_class=3)
  assert data.num_classes == 2 and len(data.train) == 6
  train = [(data.train[i]["label"], data.train[i]["image"]) for i in range(6)]
  assert sorted(label for label, _ in train) == [0, 0, 0, 1, 1, 1]
  # Relabelled images are the originals: 7 -> 0, 2 -> 1, the first three of each.
  originals = {c: [digits.train[i]["image"] for i in range(len(digits.train))
                   if digits.train[i]["label"] == c][:3] for c in (7, 2)}
  for label, image in train:
    assert any(np.array_equal(image, o) for o in originals[(7, 2)[label]])
  test_labels = [digits.test[i]["label"] for i in range(len(digits.test))]
  assert len(data.test) == sum(label in (7, 2) for label in test_labels)
  with pytest.raises(ValueError, match="data.classes"):
    images.load("digits", classes=(3, 10))


def _parse_idx_independently(path):
  """The IDX format read by hand: 2 zero bytes, type 0x08, ndim, big-endian int32 sizes."""
  raw = gzip.decompress(pathlib.Path(path).read_bytes())
  zero, kind, ndim = struct.unpack(">HBB", raw[:4])
  assert (zero, kind) == (0, 8)
  shape = struct.unpack(f">{ndim}i", raw[4:4 + 4 * ndim])
  return np.frombuffer(raw[4 + 4 * ndim:], np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def fashion(fashion_mnist_dir):
  return images.fashion_mnist(idx_dir=fashion_mnist_dir)


def test_fashion_mnist_equals_an_independent_parse_of_the_idx_files(fashion, fashion_mnist_dir):
  assert (len(fashion.train), len(fashion.test), fashion.num_classes) == (60000, 10000, 10)
  assert fashion.shape == (28, 28, 1)
  for split, prefix in (("train", "train"), ("test", "t10k")):
    source = getattr(fashion, split)
    labels = _parse_idx_independently(f"{fashion_mnist_dir}/{prefix}-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal([source[i]["label"] for i in range(len(source))], labels)
    np.testing.assert_array_equal(np.bincount(labels), [len(source) // 10] * 10)  # balanced
    pixels = _parse_idx_independently(f"{fashion_mnist_dir}/{prefix}-images-idx3-ubyte.gz")
    for i in (0, 1, len(source) // 2, len(source) - 1):
      np.testing.assert_array_equal(source[i]["image"][..., 0], pixels[i])
  assert fashion.train[0]["label"] == 9  # the first training image is an ankle boot


def test_fashion_mnist_balanced_subset_through_the_grain_stream(fashion_mnist_dir):
  data = images.load("fashion_mnist", idx_dir=fashion_mnist_dir, train_per_class=30)
  assert len(data.train) == 300 and len(data.test) == 10000
  assert np.bincount([data.train[i]["label"] for i in range(300)]).tolist() == [30] * 10
  batch = _batches(data, seed=0, count=1, augment=False)[0]
  assert batch.inputs.shape == (32, 28, 28, 1) and abs(batch.inputs.mean()) < 0.5


def test_fashion_mnist_tfds_route_on_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=20):
    data = images.load("fashion_mnist")
  assert data.shape == (28, 28, 1) and data.num_classes == 10 and len(data.train) == 20


def test_fashion_mnist_absent_names_the_package_and_the_tfds_command(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist.*tfds "
                     r"build fashion_mnist"):
    images.fashion_mnist(data_dir=str(tmp_path), idx_dir=str(tmp_path))


@pytest.mark.parametrize("raw, match", [
    (b"\0\0\x0d\x01" + (3).to_bytes(4, "big") + bytes(12), "not an IDX file of unsigned bytes"),
    (b"\0\0\x08\x01" + (5).to_bytes(4, "big") + bytes(3), "truncated or corrupt"),
])
def test_read_idx_refuses_other_types_and_truncated_files(tmp_path, raw, match):
  path = tmp_path / "bad-idx1-ubyte"
  path.write_bytes(raw)
  with pytest.raises(ValueError, match=match):
    images.read_idx(str(path))


def test_read_idx_plain_and_gzip_agree(tmp_path):
  raw = b"\0\0\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6))
  (tmp_path / "a").write_bytes(raw)
  (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
  expected = np.arange(6, dtype=np.uint8).reshape(2, 3)
  for name in ("a", "a.gz"):
    np.testing.assert_array_equal(images.read_idx(str(tmp_path / name)), expected)
