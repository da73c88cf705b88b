"""Datasets: algorithmic tasks made on the fly (no download)."""

from ncjax.data.algorithmic import OPERATIONS, Split, modular_arithmetic
