"""ncjax: neural collapse and matrix-information metrics in JAX.

Importing ncjax has no side effects (no XLA flags, no matplotlib backend): the CLI and
the test conftest set those for their processes.
"""

from ncjax.collapse import (
    cdnv,
    class_stats,
    collapse_metrics,
    collapse_metrics_from_stats,
    effective_rank,
    gnc2,
    nc1,
    nc2,
    nc3,
    nc4,
    nc5,
    nci_score,
    unc3,
    vci,
)
from ncjax.info import (
    entropies,
    gram_entropy,
    hdr,
    hdr_from_entropies,
    joint_entropy,
    joint_entropy_slq,
    label_entropies,
    matrix_entropy,
    mir,
    mir_from_entropies,
    mutual_information,
)
from ncjax.kernels import cosine_gram, hadamard_features, normalize_rows, trace_normalize
from ncjax.stats import ClassStats
from ncjax import losses, optim, progress, sharding, spectral

__version__ = "0.1.0"
