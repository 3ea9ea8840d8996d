"""Layerwise sparsity allocation: a linear-region bound and a solver for per-layer densities.

Importing this package (and ``allocator.bound``) never imports torch; the torch side lives in
sub-packages that import it explicitly.

Vocabulary (see the project's spec): *density* is the fraction of a tensor's weights that are kept,
*sparsity* is ``1 - density``, *kept* is the integer count of non-zero weights, and logs of bounds
are natural logs ("nats") unless a name says ``log2``.
"""

__version__ = "0.1.0"

from allocator.errors import AllocatorError, InvalidInputError, InfeasibleError, SolverError
from allocator.network import Network

__all__ = [
    "__version__",
    "AllocatorError",
    "InvalidInputError",
    "InfeasibleError",
    "SolverError",
    "Network",
]
