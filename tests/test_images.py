"""Image data: sources, the Grain training stream (determinism, exact resume, any rows of
any step) and the evaluation batches."""

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


def _batches(data, seed, count, start=0, augment=True):
  elements = images.train_elements(data, seed=seed, augment=augment)
  return [images.train_rows(data, elements, 32, step, slice(None)) for step in range(start, start + count)]


def test_training_batches_are_seeded_and_resume_exactly():
  data = images.synthetic()
  first = _batches(data, seed=1, count=12)
  again = _batches(data, seed=1, count=12)
  other = _batches(data, seed=2, count=12)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a.inputs, b.inputs)
  assert not np.array_equal(first[0].inputs, other[0].inputs)
  resumed = _batches(data, seed=1, count=7, start=5)  # a fresh stream from step 5
  for a, b in zip(first[5:], resumed):
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
  for a, b in zip(whole, part):
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
