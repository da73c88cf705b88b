"""Image classification data: TFDS ``data_source`` (array_record, no TensorFlow) or an
in-memory source, fed through Grain.

Every source is a random-access sequence of records ``{"image": (H, W, C) uint8 or float,
"label": int}``. Training examples come from a Grain ``MapDataset``: shuffled with a new
order each epoch (seeded), augmented (seeded per element), read by random access, so the
rows of step t's batch depend on (seed, t) alone: each process reads only its own rows,
and a resumed run sees exactly the same batches. Evaluation walks a split in order, in
fixed-size batches whose padding is masked out (one compiled shape).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, cast

import grain
import numpy as np

PAD = 4  # pixels of zero padding before the random crop (CIFAR augmentation)
FASHION_MNIST_IDX = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


class Batch(NamedTuple):
  """One batch: inputs (B, ...), labels (B,) int32, mask (B,) bool (False on padding):
  NumPy arrays on the host, jax.Arrays once on device (hence typed Any)."""

  inputs: Any
  labels: Any
  mask: Any


class ArraySource(Sequence):
  """Records from arrays held in memory: images (N, H, W, C), labels (N,)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    self.images, self.labels = images, labels.astype(np.int64)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": self.labels[i]}


class Subset(Sequence):
  """The records ``indices`` of ``source``, their labels mapped through ``relabel``."""

  def __init__(self, source: Sequence, indices: np.ndarray, relabel: dict[int, int]):
    self.source, self.indices, self.relabel = source, indices, relabel

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    record = self.source[int(self.indices[i])]
    return {"image": record["image"], "label": self.relabel[int(record["label"])]}


def _labels(source: Sequence) -> np.ndarray:
  if isinstance(source, ArraySource):
    return source.labels
  return np.asarray([source[i]["label"] for i in range(len(source))])  # one read each


def _select(source: Sequence, classes: Sequence[int], per_class: int | None) -> Subset:
  """The records of ``classes`` (relabelled 0..k-1 in that order); with ``per_class``,
  only the first ``per_class`` of each."""
  labels = _labels(source)
  picked = [np.flatnonzero(labels == c)[:per_class] for c in classes]
  return Subset(source, np.sort(np.concatenate(picked)), {c: i for i, c in enumerate(classes)})


@dataclasses.dataclass(frozen=True)
class ImageData:
  """Train and test sources of one dataset, with the per-channel statistics of train."""

  train: Sequence
  test: Sequence
  num_classes: int
  mean: np.ndarray  # (C,) of the raw pixel values
  std: np.ndarray  # (C,)

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(np.shape(self.train[0]["image"]))


def _channel_stats(source: Sequence, limit: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std over the first ``limit`` records (deterministic)."""
  images = np.stack([np.asarray(source[i]["image"], np.float64)
                     for i in range(min(len(source), limit))])
  axes = tuple(range(images.ndim - 1))
  return images.mean(axes).astype(np.float32), np.maximum(images.std(axes), 1e-6).astype(
      np.float32)


def _from_arrays(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, num_classes: int) -> ImageData:
  train = ArraySource(x_train, y_train)
  return ImageData(train, ArraySource(x_test, y_test), num_classes, *_channel_stats(train))


def digits(test_size: int = 500, seed: int = 0) -> ImageData:
  """scikit-learn's digits: 1,797 real 8 x 8 grey images (values 0-16) of 10 classes,
  shipped inside scikit-learn; a fixed split of ``test_size`` test images."""
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = x.reshape(-1, 8, 8, 1).astype(np.float32)
  order = np.random.default_rng(seed).permutation(len(y))
  test, train = order[:test_size], order[test_size:]
  return _from_arrays(x[train], y[train], x[test], y[test], 10)


def digits_mnist_frame(test_size: int = 500, seed: int = 0) -> ImageData:
  """:func:`digits` in MNIST's frame: each 8 x 8 image upsampled (bilinear) to 20 x 20,
  centred in 28 x 28 by 4 pixels of zero padding (as MNIST centres its digits), values
  scaled from 0-16 to 0-255: a 28 x 28 grey target for models trained on Fashion-MNIST."""
  from scipy.ndimage import zoom

  data = digits(test_size, seed)
  train, test = (cast(ArraySource, s) for s in (data.train, data.test))

  def frame(source: ArraySource) -> np.ndarray:
    big = zoom(source.images, (1, 2.5, 2.5, 1), order=1, grid_mode=True, mode="nearest")
    return np.pad(np.clip(big, 0, 16) * (255 / 16), ((0, 0), (4, 4), (4, 4), (0, 0)))

  return _from_arrays(frame(train), train.labels, frame(test), test.labels, 10)


def synthetic(num_classes: int = 4, size: int = 8, channels: int = 3, train_size: int = 256,
              test_size: int = 128, noise: float = 0.5, seed: int = 0) -> ImageData:
  """A seeded Gaussian mixture of images: one random template per class plus noise."""
  rng = np.random.default_rng(seed)
  templates = rng.normal(size=(num_classes, size, size, channels))

  def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % num_classes
    x = templates[y] + noise * rng.normal(size=(n, size, size, channels))
    return x.astype(np.float32), y

  return _from_arrays(*split(train_size), *split(test_size), num_classes)


def tfds_data(name: str, data_dir: str | None = None) -> ImageData:
  """A prepared TFDS dataset (``train`` and ``test`` splits) through ``tfds.data_source``.

  Raises:
    FileNotFoundError: the dataset is not prepared under ``data_dir``; the message says
      how to prepare it (this never downloads).
  """
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise ImportError("TFDS data needs `pip install 'ncjax[tfds]'`.") from e
  try:
    splits = tfds.data_source(name, split=("train", "test"), data_dir=data_dir, download=False)
    num_classes = tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes
  except Exception as e:  # TFDS raises assorted types for "not prepared"
    where = data_dir or "~/tensorflow_datasets (the TFDS default)"
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared in {where}: run `tfds build {name} "
        f"--data_dir {data_dir or '~/tensorflow_datasets'}` (or tfds.builder({name!r}, "
        f"data_dir=...).download_and_prepare()) on a machine with internet, then point "
        f"config.data.data_dir at it. ({type(e).__name__}: {str(e)[:200]})") from e
  train, test = splits
  return ImageData(train, test, num_classes, *_channel_stats(train))


def read_idx(path: str) -> np.ndarray:
  """An IDX file of unsigned bytes (LeCun's MNIST format; gzip-compressed if the name
  ends in ``.gz``) as a uint8 array of the shape its header gives."""
  with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[:3] != b"\0\0\x08":
    raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4]!r}).")
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if body.size != np.prod(shape):
    raise ValueError(f"{path}: the header gives shape {shape}, the file holds {body.size} "
                     "values (truncated or corrupt).")
  return body.reshape(shape)


def _idx_file(idx_dir: str, stem: str) -> str | None:
  for name in (stem, stem + ".gz"):
    if os.path.exists(path := os.path.join(idx_dir, name)):
      return path
  return None


def fashion_mnist(data_dir: str | None = None, idx_dir: str | None = None) -> ImageData:
  """Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28 x 28 grey images
  (uint8), 10 classes. A prepared TFDS copy under ``data_dir`` is read through
  ``tfds.data_source``; otherwise (or whenever ``idx_dir`` is given) the four IDX files
  in ``idx_dir`` (default: where Debian's ``dataset-fashion-mnist`` puts them).

  Raises:
    FileNotFoundError: neither source is there; the message says how to get one.
  """
  if idx_dir is None:
    try:
      return tfds_data("fashion_mnist", data_dir)
    except (ImportError, FileNotFoundError):
      pass
  where = idx_dir or FASHION_MNIST_IDX
  stems = {(split, part): f"{prefix}-{part}-idx{3 if part == 'images' else 1}-ubyte"
           for split, prefix in (("train", "train"), ("test", "t10k"))
           for part in ("images", "labels")}
  paths = {key: _idx_file(where, stem) for key, stem in stems.items()}
  if None in paths.values():
    missing = [stems[key] for key, path in paths.items() if path is None]
    raise FileNotFoundError(
        f"Fashion-MNIST not found: no IDX files {missing} (or .gz) in {where}, and no "
        f"prepared TFDS copy in {data_dir or '~/tensorflow_datasets'}. Offline on Debian or "
        "Ubuntu: `apt-get install dataset-fashion-mnist`; or `tfds build fashion_mnist` on "
        "a machine with internet (then config.data.data_dir); or put the IDX files in a "
        "directory and set config.data.idx_dir.")
  arrays = {key: read_idx(cast(str, path)) for key, path in paths.items()}
  for split in ("train", "test"):
    if len(arrays[split, "images"]) != len(arrays[split, "labels"]):
      raise ValueError(f"Fashion-MNIST {split}: {len(arrays[split, 'images'])} images but "
                       f"{len(arrays[split, 'labels'])} labels in {where}.")
  return _from_arrays(arrays["train", "images"][..., None], arrays["train", "labels"],
                      arrays["test", "images"][..., None], arrays["test", "labels"], 10)


def load(name: str, data_dir: str | None = None, *, idx_dir: str | None = None,
         classes: Sequence[int] | None = None, train_per_class: int | None = None) -> ImageData:
  """``digits``, ``digits_28`` (:func:`digits_mnist_frame`), ``synthetic``,
  ``fashion_mnist`` (:func:`fashion_mnist`, ``idx_dir``), or the name of a TFDS image
  dataset.

  ``classes``: keep only these labels, relabelled 0..k-1 in the given order (e.g. source
  and target classes of a transfer experiment); ``train_per_class``: keep only the first
  that many train images of each class (few-shot, or a class-balanced subset). The channel
  statistics are those of the train split that remains.
  """
  if name == "digits":
    data = digits()
  elif name == "digits_28":
    data = digits_mnist_frame()
  elif name == "synthetic":
    data = synthetic()
  elif name == "fashion_mnist":
    data = fashion_mnist(data_dir, idx_dir)
  else:
    data = tfds_data(name, data_dir)
  if classes is None and train_per_class is None:
    return data
  classes = list(range(data.num_classes)) if classes is None else list(classes)
  if max(classes) >= data.num_classes:
    raise ValueError(f"data.classes must lie in [0, {data.num_classes}) for {name!r}, got "
                     f"{classes}.")
  train = _select(data.train, classes, train_per_class)
  return ImageData(train, _select(data.test, classes, None), len(classes),
                   *_channel_stats(train))


def _augment(record: dict, rng: np.random.Generator) -> dict:
  """Random crop after 4-pixel zero padding, then a random horizontal flip."""
  image = np.asarray(record["image"])
  h, w = image.shape[:2]
  padded = np.pad(image, ((PAD, PAD), (PAD, PAD), (0, 0)))
  top, left = rng.integers(0, 2 * PAD + 1, size=2)
  image = padded[top:top + h, left:left + w]
  if rng.random() < 0.5:
    image = image[:, ::-1]
  return {"image": image, "label": record["label"]}


def collate(data: ImageData, records: Sequence[dict]) -> Batch:
  """Records stacked into a normalised Batch (mask all True)."""
  images = np.stack([np.asarray(r["image"], np.float32) for r in records])
  labels = np.asarray([r["label"] for r in records], np.int32)
  return Batch((images - data.mean) / data.std, labels, np.ones(len(labels), bool))


def train_elements(data: ImageData, *, seed: int, augment: bool) -> grain.MapDataset:
  """The endless training stream, one example per element: a new shuffle each epoch,
  seeded augmentation. Element ``t * B + j`` is row j of step t's batch of B rows: a
  function of (seed, t) alone, so any process can read any rows of any step (random
  access) and a resumed run, on any number of devices, sees the same batches."""
  ds = grain.MapDataset.source(data.train).shuffle(seed=seed).repeat(None)
  return ds.random_map(_augment, seed=seed) if augment else ds


def train_rows(data: ImageData, elements: grain.MapDataset, batch_size: int, step: int,
               rows: slice, pool=None) -> Batch:
  """Rows ``rows`` of step ``step``'s batch of ``batch_size`` (see :func:`train_elements`),
  normalised; ``pool``: an executor whose threads read the records."""
  indices = range(step * batch_size, (step + 1) * batch_size)[rows]
  read = elements.__getitem__
  return collate(data, list(pool.map(read, indices) if pool else map(read, indices)))


def split_rows(data: ImageData, split: str, indices: np.ndarray, n: int | None = None) -> Batch:
  """The records ``indices`` of ``split``, normalised, no augmentation; indices >= ``n``
  (default: the split's size) are padding, masked out."""
  source = {"train": data.train, "test": data.test}[split]
  n = len(source) if n is None else n
  real = indices < n
  batch = collate(data, [source[int(i)] for i in np.where(real, indices, 0)])
  return Batch(batch.inputs, batch.labels, real)


def eval_batches(data: ImageData, split: str, batch_size: int,
                 limit: int | None = None) -> Iterator[Batch]:
  """A split in order, in batches of exactly ``batch_size`` (the last one padded, with
  mask False on the padding), normalised, no augmentation. ``limit``: first examples only."""
  size = len({"train": data.train, "test": data.test}[split])
  n = size if limit is None else min(limit, size)
  for start in range(0, n, batch_size):
    yield split_rows(data, split, np.arange(start, start + batch_size), n)
