"""ncjax: neural collapse and matrix-information metrics in JAX.

Importing ncjax has no side effects (no XLA flags, no matplotlib backend): the CLI and
the test conftest set those for their processes.
"""

from ncjax import baselines, losses, optim, progress, sharding, spectral
from ncjax._conditioning import TOLERANCE, ConditioningWarning
from ncjax.collapse import (
    cdnv,
    collapse_metrics,
    collapse_metrics_from_stats,
    collapse_metrics_from_stats_jit,
    collapse_metrics_jit,
    effective_rank,
    gnc2,
    nc1,
    nc2,
    nc3,
    nc4,
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
from ncjax.kernels import cosine_gram, hadamard_features, normalize_rows
from ncjax.ood import nc5, nci_score
from ncjax.stats import ClassStats, class_stats

__version__ = "0.1.0"

__all__ = [
    # class statistics and the collapse metrics of them
    "ClassStats", "class_stats", "nc1", "nc2", "nc3", "nc4", "unc3", "cdnv", "gnc2", "vci",
    "effective_rank", "collapse_metrics", "collapse_metrics_from_stats", "collapse_metrics_jit",
    "collapse_metrics_from_stats_jit",
    # out-of-distribution scores
    "nci_score", "nc5",
    # matrix information of cosine Grams
    "gram_entropy", "matrix_entropy", "joint_entropy", "joint_entropy_slq", "entropies",
    "label_entropies", "mutual_information", "mir", "hdr", "mir_from_entropies",
    "hdr_from_entropies",
    # kernels
    "cosine_gram", "hadamard_features", "normalize_rows",
    # numerics: the error budget and the warning when an estimate exceeds it
    "TOLERANCE", "ConditioningWarning",
    # modules
    "baselines", "losses", "optim", "progress", "sharding", "spectral",
]
