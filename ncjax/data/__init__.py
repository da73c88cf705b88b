"""Datasets: algorithmic tasks made on the fly, and image data (TFDS + Grain, digits,
synthetic). Every batch is a :class:`Batch` ``(inputs, labels, mask)``."""

from ncjax.data.algorithmic import GROUPS, OPERATIONS, Split, algorithmic, num_classes
from ncjax.data.images import Batch
