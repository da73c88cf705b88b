"""ncjax: neural collapse and matrix-information metrics in JAX."""

from ncjax.info import (
    entropies,
    gram_entropy,
    hdr,
    joint_entropy,
    matrix_entropy,
    mir,
    mutual_information,
)
from ncjax.kernels import cosine_gram, hadamard_features, normalize_rows, trace_normalize

__version__ = "0.1.0"
