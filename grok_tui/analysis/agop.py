"""Feature-matrix progress measures of Mallinar et al. 2024 (§3), numpy only.

Both model families are read through a 2p×2p (or (2p+T)×(2p+T) for mixtures) *feature matrix* over the
one-hot input ``e_a ⊕ e_b``: the RFM's ``M`` and, for the quadratic MLP, the neural feature matrix
``NFM = W₁W₁ᵀ`` (x @ W convention) or ``sqrt(AGOP)``. Where the model has learned the operation, the
off-diagonal block ``A = M[p:2p, :p]`` (rows b, columns a) becomes circulant or Hankel — in the natural
order for add/sub, in the discrete-log order for mul/div. The measures:

- circulant deviation D(A): 0 for an exact circulant (or Hankel) block, ~(1 - 1/p)·var/mean-square for noise;
- AGOP alignment ρ(M_t, M*): cosine similarity of the flattened matrices;
- NFA correlation: Pearson correlation of NFM and sqrt(AGOP) (Radhakrishnan et al.'s neural feature ansatz).

Which shift direction an operation produces was measured on Gaussian RFM runs (p = 31 and 61; pinned by
tests/test_rfm.py): add, and mul in log order, give a *circulant* block A[b, a] = c[a - b]; sub, and div
in log order, a *Hankel* block A[b, a] = c[a + b] (the wrong direction stays near 1 throughout). Any other
task reports the smaller of the two deviations.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..runs import finite
from ..tasks import is_prime
from .dlog import dlog_perm
from .fourier import fourier_basis

CIRCULANT = "circulant"  # A[i, j] = c[j - i]: row ℓ rolled by -ℓ makes every column constant
HANKEL = "hankel"  # A[i, j] = c[i + j]: row ℓ rolled by +ℓ makes every column constant
DIRECTIONS = (CIRCULANT, HANKEL)

# Operation (normalised expression) → (shift direction of the off-diagonal block, needs discrete-log order).
_OPS: dict[str, tuple[str, bool]] = {
    "a+b": (CIRCULANT, False),
    "b+a": (CIRCULANT, False),
    "a-b": (HANKEL, False),
    "b-a": (HANKEL, False),
    "a*b": (CIRCULANT, True),
    "b*a": (CIRCULANT, True),
    "a/b": (HANKEL, True),
    "b/a": (HANKEL, True),
}


# --------------------------------------------------------------------------- matrices


def sym_power(G: np.ndarray, power: float) -> np.ndarray:
    """G^power for a symmetric PSD G by eigendecomposition; negative round-off eigenvalues clipped to 0.

    Exact for the AGOP (symmetric by construction) and far cheaper and stabler than a general sqrtm.
    """
    G = np.asarray(G, dtype=np.float64)
    G = 0.5 * (G + G.T)
    if power == 1:
        return G
    w, V = np.linalg.eigh(G)
    w = np.clip(w, 0.0, None) ** power
    return (V * w) @ V.T


def agop(jacobians: np.ndarray, centering: bool = False) -> np.ndarray:
    """Average gradient outer product (1/n) Σ_i J_i J_iᵀ of per-sample Jacobians J_i (n, d, c) → (d, d).

    ``centering`` subtracts the mean Jacobian first, as Mallinar et al.'s RFM code does.
    """
    J = np.asarray(jacobians, dtype=np.float64)
    if centering:
        J = J - J.mean(axis=0, keepdims=True)
    flat = np.ascontiguousarray(J.transpose(1, 0, 2)).reshape(J.shape[1], -1)
    return flat @ flat.T / J.shape[0]


def agop_alignment(A: np.ndarray, B: np.ndarray) -> float:
    """ρ(A, B) = ⟨A, B⟩_F / (‖A‖_F ‖B‖_F): 1 for proportional matrices; nan if either is zero."""
    a = np.asarray(A, dtype=np.float64).ravel()
    b = np.asarray(B, dtype=np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / den if den > 0 else math.nan


def pearson(A: np.ndarray, B: np.ndarray, diagonal: bool = True) -> float:
    """Pearson correlation of the flattened matrices (np.corrcoef, as in Mallinar et al.'s train_net.py).

    ``diagonal=False`` zeroes both diagonals first (their "no diag" variant).
    """
    A = np.array(A, dtype=np.float64)
    B = np.array(B, dtype=np.float64)
    if not diagonal:
        np.fill_diagonal(A, 0.0)
        np.fill_diagonal(B, 0.0)
    a, b = A.ravel() - A.mean(), B.ravel() - B.mean()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / den if den > 0 else math.nan


# --------------------------------------------------------------------------- the off-diagonal block


def offdiag_block(M: np.ndarray, p: int) -> np.ndarray:
    """A = M[p:2p, :p]: rows index b, columns index a (input e_a ⊕ e_b; task bits of mixtures ignored)."""
    return np.asarray(M, dtype=np.float64)[p : 2 * p, :p]


def dlog_view(A: np.ndarray, p: int) -> np.ndarray:
    """A p×p block in discrete-log order with residue 0 dropped: (p-1)×(p-1), rows/cols g^0, g^1, …

    Multiplication becomes addition mod p-1 there, so a mul/div block turns Hankel/circulant.
    """
    perm = dlog_perm(p)[1:]
    return np.asarray(A)[np.ix_(perm, perm)]


def shift_rows(A: np.ndarray, direction: str) -> np.ndarray:
    """S(A): row ℓ rolled by -ℓ (circulant) or +ℓ (hankel), so the block's diagonals become columns."""
    A = np.asarray(A, dtype=np.float64)
    n_rows, n_cols = A.shape
    if n_rows != n_cols:
        raise ValueError(f"circulant deviation needs a square block, got {A.shape}")
    sign = -1 if direction == CIRCULANT else 1
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    rows = np.arange(n_rows)[:, None]
    cols = (np.arange(n_cols)[None, :] - sign * rows) % n_cols  # rolled[ℓ, j] = A[ℓ, j - sign·ℓ]
    return A[rows, cols]


def circulant_deviation(A: np.ndarray, direction: str = CIRCULANT) -> float:
    """D(A) = Σ_j Var(S(A)[:, j]) / ‖A‖²_F, un-normalised Var (Mallinar et al. 2024 §3); nan for a zero A.

    0 exactly when A is circulant (``direction="circulant"``) or Hankel (``"hankel"``); at most 1.
    """
    S = shift_rows(A, direction)
    total = float(np.sum(S * S))
    if total <= 0 or not math.isfinite(total):
        return math.nan
    dev = S - S.mean(axis=0, keepdims=True)
    return float(np.sum(dev * dev)) / total


def _norm_expr(expr: str) -> str:
    return re.sub(r"\s+", "", expr).replace("x", "a").replace("y", "b")


def task_geometry(tasks: list[str], discrete_log: str = "auto") -> tuple[str | None, bool]:
    """(direction, use discrete-log order) for a run's task expressions (spec["tasks"]).

    direction None means "not a known operation: report the smaller deviation". ``discrete_log`` is the
    spec's analysis.discrete_log: auto (on for mul/div), on, off.
    """
    known = [_OPS.get(_norm_expr(t)) for t in tasks]
    direction = known[0][0] if known and all(k is not None and k[0] == known[0][0] for k in known) else None
    auto_dlog = bool(known) and all(k is not None and k[1] for k in known)
    use_dlog = discrete_log == "on" or (discrete_log == "auto" and auto_dlog)
    if use_dlog != auto_dlog:
        direction = None  # the known shape is for the other ordering
    return direction, use_dlog


def measured_block(M: np.ndarray, p: int, use_dlog: bool) -> np.ndarray:
    A = offdiag_block(M, p)
    return dlog_view(A, p) if use_dlog else A


def feature_circulant_deviation(M: np.ndarray, p: int, direction: str | None, use_dlog: bool) -> float:
    """Circulant deviation of M's off-diagonal block in the view and direction the task calls for.

    ``direction=None`` → the smaller of the two directions.
    """
    A = measured_block(M, p, use_dlog)
    if direction is not None:
        return circulant_deviation(A, direction)
    vals = [circulant_deviation(A, d) for d in DIRECTIONS]
    finite = [v for v in vals if math.isfinite(v)]
    return min(finite) if finite else math.nan


def block_spectrum(A: np.ndarray) -> np.ndarray:
    """Per frequency k = 1..⌊m/2⌋ of an m×m block, ‖(F A Fᵀ)[S_k, S_k]‖_F with S_k = {cos_k, sin_k} rows.

    A circulant or Hankel block is block-diagonal in this basis, so this is its whole spectrum (√2·|λ_k|
    for a circulant); the TUI's Fourier heatmap shows it for RFM and MLP feature matrices.
    """
    A = np.asarray(A, dtype=np.float64)
    m = A.shape[0]
    F = fourier_basis(m)
    hat = F @ A @ F.T
    out = np.empty(m // 2)
    for k in range(1, m // 2 + 1):
        idx = [i for i in (2 * k - 1, 2 * k) if i < m]
        out[k - 1] = np.linalg.norm(hat[np.ix_(idx, idx)])
    return out


# --------------------------------------------------------------------------- the quadratic MLP


def neural_feature_matrix(W1: np.ndarray) -> np.ndarray:
    """NFM = W₁W₁ᵀ for a first layer stored (inputs, hidden) (x @ W): (inputs × inputs)."""
    W1 = np.asarray(W1, dtype=np.float64)
    return W1 @ W1.T


def _slope_gram(
    W1: np.ndarray, b1: np.ndarray | None, hot: np.ndarray, act: str, centering: bool
) -> np.ndarray:
    """SᵀS for the hidden slopes S = σ'(xW₁ + b₁) at the one-hot inputs ``hot`` (n, k) → (hidden, hidden).

    Quadratic σ: S = 2(X W̃) is linear in the input (W̃ = [W₁; b₁], X̃ = [X, 1]), so SᵀS = 4 W̃ᵀ(X̃ᵀX̃)W̃
    with X̃ᵀX̃ the (d+1)² co-occurrence counts: d·h² work instead of n·h² (15x less at p = 61).
    ReLU slopes are not linear, so they are formed explicitly.
    """
    n, d = hot.shape[0], W1.shape[0]
    if act == "quadratic":
        Wt = np.vstack([W1, np.zeros((1, W1.shape[1])) if b1 is None else b1[None, :]])
        counts = np.zeros((d + 1, d + 1))
        cols = np.concatenate([hot, np.full((n, 1), d)], axis=1)
        np.add.at(counts, (cols[:, :, None], cols[:, None, :]), 1.0)
        gram = 4.0 * (Wt.T @ counts @ Wt)
        if centering:
            mean = 2.0 * (counts[d] @ Wt) / n  # row d of X̃ᵀX̃ is Σ_x x̃
            gram -= n * np.outer(mean, mean)
        return gram
    if act != "relu":
        raise ValueError(f"no closed-form AGOP for activation '{act}'")
    z = W1[hot].sum(axis=1) + (0.0 if b1 is None else b1)
    S = (z > 0).astype(np.float64)
    if centering:
        S = S - S.mean(axis=0, keepdims=True)
    return S.T @ S


def mlp_agop(
    W1: np.ndarray,
    W2: np.ndarray,
    hot: np.ndarray,
    act: str = "quadratic",
    b1: np.ndarray | None = None,
    centering: bool = False,
) -> np.ndarray:
    """Exact AGOP of f(x) = σ(xW₁ + b₁)W₂ over one-hot inputs, from the weights alone.

    J(x) = W₁ diag(σ'(xW₁ + b₁)) W₂, so Σ_x J Jᵀ = W₁ [(W₂W₂ᵀ) ∘ (SᵀS)] W₁ᵀ with S the (n, hidden) slopes:
    no autograd, no per-sample loop. ``hot`` (n, k) holds the positions of the k ones of each input
    (a, p + b [, 2p + task]). Uncentred by default, like Mallinar et al.'s network code.
    """
    W1 = np.asarray(W1, dtype=np.float64)
    W2 = np.asarray(W2, dtype=np.float64)
    hot = np.asarray(hot)
    b = None if b1 is None else np.asarray(b1, dtype=np.float64)
    inner = (W2 @ W2.T) * _slope_gram(W1, b, hot, act, centering)
    return W1 @ inner @ W1.T / hot.shape[0]


def nfa_correlation(nfm: np.ndarray, agop_matrix: np.ndarray, diagonal: bool = True) -> float:
    """Pearson correlation of the NFM with sqrt(AGOP) (Mallinar et al. 2024 §4: 0.92–0.96 on grokked nets)."""
    return pearson(nfm, sym_power(agop_matrix, 0.5), diagonal=diagonal)


def _one_hot_positions(
    a: np.ndarray, b: np.ndarray, task_ids: np.ndarray | None, p: int, n_tasks: int
) -> np.ndarray:
    cols = [np.asarray(a), p + np.asarray(b)]
    if n_tasks > 0 and task_ids is not None:
        cols.append(2 * p + np.asarray(task_ids))
    return np.stack(cols, axis=1).astype(np.int64)


def mlp_measures(arrays: dict[str, np.ndarray], dataset: Any, spec: dict[str, Any]) -> dict[str, float]:
    """Per-evaluation RFM-comparable measures of an MLP checkpoint (numpy; ~0.1 s at p = 61, width 1024).

    Returns ``circulant_deviation`` (of sqrt(AGOP), as for the RFM's M), ``circulant_deviation_nfm``,
    ``nfa_corr`` and ``nfa_corr_nodiag``. The AGOP needs one hidden layer (quadratic or ReLU); deeper nets
    get the NFM measure only. ``dataset`` is a tasks.Dataset (a, b, task_ids, is_train: the AGOP is over
    the training inputs).
    """
    p = int(spec["p"])
    W1 = np.asarray(arrays["mlp.0.W"], dtype=np.float64)
    n_tasks = W1.shape[0] - 2 * p
    direction, use_dlog = task_geometry(
        list(spec.get("tasks") or []), spec.get("analysis", {}).get("discrete_log", "auto")
    )
    if use_dlog and not is_prime(p):
        use_dlog, direction = False, None
    nfm = neural_feature_matrix(W1)
    out = {"circulant_deviation_nfm": feature_circulant_deviation(nfm, p, direction, use_dlog)}
    act = spec.get("model", {}).get("act", "quadratic")
    if "mlp.2.W" in arrays or "mlp.1.W" not in arrays:
        return out
    mask = np.asarray(dataset.is_train)
    hot = _one_hot_positions(dataset.a[mask], dataset.b[mask], dataset.task_ids[mask], p, n_tasks)
    G = mlp_agop(W1, arrays["mlp.1.W"], hot, act=act, b1=arrays.get("mlp.0.b"))
    root = sym_power(G, 0.5)
    out["circulant_deviation"] = feature_circulant_deviation(root, p, direction, use_dlog)
    out["nfa_corr"] = pearson(nfm, root)
    out["nfa_corr_nodiag"] = pearson(nfm, root, diagonal=False)
    return out


# --------------------------------------------------------------------------- progress.jsonl


def progress_rows(
    history: list[np.ndarray], deviations: list[float], reference: np.ndarray, ref_step: int, final: bool
) -> list[dict[str, Any]]:
    """RFM rows of progress.jsonl: the alignment of every iterate M_s with ``reference`` (the latest
    AGOP^s while the run goes on, the final one at its end), and each iterate's circulant deviation.
    All rows change with the reference, so the trainer replaces the file whole each iteration."""
    return [
        {
            "step": s,
            "agop_alignment_final": finite(agop_alignment(Ms, reference)),
            "circulant_deviation": finite(dev),
            "reference_step": ref_step,
            "final": final,
        }
        for s, (Ms, dev) in enumerate(zip(history, deviations, strict=True))
    ]
