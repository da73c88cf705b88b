"""ncjax: neural collapse and matrix-information metrics in JAX.

Importing ncjax has no side effects (no XLA flags, no matplotlib backend): the CLI and
the test conftest set those for their processes.
"""

from ncjax import baselines, collapse, info, keys, losses, optim, progress, sharding, spectral
from ncjax._conditioning import TOLERANCE, ConditioningWarning
from ncjax.collapse import *  # noqa: F403  (collapse.__all__: every collapse metric)
from ncjax.info import *  # noqa: F403  (info.__all__: every matrix-information metric)
from ncjax.kernels import cosine_gram, hadamard_features, normalize_rows
from ncjax.ood import nc5, nci_score
from ncjax.stats import ClassStats, class_stats

__version__ = "0.1.0"

# A metric is listed once, in its module's __all__ (collapse.py, info.py), not again here.
__all__ = [
    # class statistics; the collapse metrics (collapse.__all__) and the matrix information
    # of cosine Grams (info.__all__) follow
    "ClassStats", "class_stats",
    # out-of-distribution scores
    "nci_score", "nc5",
    # kernels
    "cosine_gram", "hadamard_features", "normalize_rows",
    # numerics: the error budget and the warning when an estimate exceeds it
    "TOLERANCE", "ConditioningWarning",
    # modules
    "baselines", "keys", "losses", "optim", "progress", "sharding", "spectral",
]
__all__ += collapse.__all__
__all__ += info.__all__
