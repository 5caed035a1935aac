"""Random circulant features (Mallinar et al. 2024, Fig. 4): a fixed feature matrix with which a
plain kernel machine generalises on modular arithmetic, no AGOP iteration needed.

M* = [[I − 11ᵀ/p, Cᵀ], [C, I − 11ᵀ/p]] with C a random p×p block whose entries come from one vector drawn
uniform on [0, 1] and mean-centred, as Mallinar et al. draw it; the kernel then uses M = (M*)^{1/2} (their
inputs x → (M*)^{1/4}x). M* is indefinite, and the real part of its principal square root, which they take,
is the square root with negative eigenvalues clipped to 0 (:func:`..analysis.agop.sym_power`).

C has the shape a Recursive Feature Machine's own M reaches on the operation (``task_geometry``): for
a + b a circulant block C[b, a] = c[a − b], for a − b a Hankel block c[a + b], and the same on the residues
1..p−1 in discrete-log order for a · b and a / b (row and column 0 stay zero), which is how the paper
builds the multiplicative ones. Numpy only: the file check asks :func:`unsupported` before anything runs.
"""

from __future__ import annotations

import numpy as np

from ..analysis.agop import CIRCULANT, sym_power, task_geometry
from ..analysis.dlog import dlog_order
from ..tasks import is_prime


def unsupported(tasks: list[str], p: int) -> str | None:
    """Why random circulant features cannot be built for these task expressions at p, or None.

    The construction needs one operation whose circulant shape is known (add, sub, mul, div); mul and
    div need a prime p, for their discrete-log order.
    """
    if len(tasks) != 1:
        return "random circulant features are built for one operation, not a mixture of tasks"
    direction, use_dlog = task_geometry(tasks)
    if direction is None:
        return f"random circulant features are built for a + b, a - b, a * b and a / b, not '{tasks[0]}'"
    if use_dlog and not is_prime(p):
        return f"random circulant features for '{tasks[0]}' use the discrete-log order, which needs a prime p"
    return None


def block(tasks: list[str], p: int, seed: int) -> np.ndarray:
    """The random p×p block C (rows b, columns a), seeded: the same seed always draws the same block."""
    problem = unsupported(tasks, p)
    if problem is not None:
        raise ValueError(problem)
    direction, use_dlog = task_geometry(tasks)
    idx = dlog_order(p) if use_dlog else np.arange(p)
    m = len(idx)
    c = np.random.default_rng(seed).uniform(size=m)
    c -= c.mean()
    i, j = np.indices((m, m))  # i: b's position, j: a's position in the order idx
    C = np.zeros((p, p))
    C[np.ix_(idx, idx)] = c[(j - i) % m] if direction == CIRCULANT else c[(i + j) % m]
    return C


def random_circulant_features(tasks: list[str], p: int, seed: int) -> np.ndarray:
    """M = (M*)^{1/2} over the one-hot inputs e_a ⊕ e_b (2p × 2p), M* built from :func:`block`."""
    C = block(tasks, p, seed)
    centred = np.eye(p) - 1.0 / p
    M_star = np.block([[centred, C.T], [C, centred]])
    return sym_power(M_star, 0.5)
