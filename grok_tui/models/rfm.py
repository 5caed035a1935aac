"""Recursive Feature Machines (Mallinar et al. 2024, Alg. 1): kernel ridge regression + AGOP, as a run.

One RFM iteration t: solve α = (K_{M_t}(X, X) + λI)⁻¹ Y on the training inputs (ridge λ may be 0: exact
interpolation), predict every pair, then M_{t+1} = G(f_t)^s with G the average gradient outer product of the
predictor over the training inputs (Jacobians centred, as the reference code does). Inputs are one-hot
``e_a ⊕ e_b`` (2p; mixtures add a task one-hot), targets one-hot (p), float64 throughout.

Why it is fast (p = 61, 50 %, Gaussian: 0.43 s per iteration on the project's idle 2-core EPYC, 0.65 s on
one core, and 100 % test accuracy at iteration 19 after 8.7 s; the reference code: 1.34 s per iteration,
31 s to 100 %; bench/bench_rfm.py):

- One-hot inputs make xᵀMx' a sum of entries of M: the Gaussian kernel is a product of gathered rows of
  exp(M x_j / L²) (no (N, n) exp, no dense product), the others a sum of gathered rows.
- The Jacobian of f(x) = Σ_j α_j k(x, x_j) is analytic. For the Gaussian kernel (exp(-‖x-x'‖²_M / 2L²))
  ∇f_c(x_i) = (1/L²) M Σ_j α_jc K_ij (x_j - x_i), so with M factored out the AGOP is M H M / (n L⁴) with
  H = Σ_{i,c} r_ic r_icᵀ, r_ic[u] = Σ_{j: x_j[u]=1} α_jc K_ij - [x_i[u]=1] f_c(x_i). Each r needs only the
  ~n/p training points sharing a coordinate, so all Jacobians cost one batched product of size n·n·c
  (instead of n·n·c·d) and the outer products one symmetric rank-k update (BLAS syrk) — no autograd.
  Laplace is the same with K_ij/‖x_i - x_j‖_M and 1/L; the quadratic kernel (xᵀMx')² has no self term.
- AGOP^s comes from an eigendecomposition of the symmetric AGOP (no general sqrtm); negative round-off
  eigenvalues are clipped to 0.

The maths only: grok_tui/training/rfm.py runs it as a training run (run directory, resume, threads).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

KERNELS = ("gaussian", "laplace", "quadratic")
#: Bytes of Jacobian rows (d × c × chunk) materialised at once; bounds memory for large p.
CHUNK_BYTES = 128 * 2**20


@dataclass
class Fit:
    """One kernel solve: α (n, c), predictions on every point (N, c) (train first), K̃ for the gradient.

    ``grad_kernel`` views the engine's scratch buffer: valid until its next :meth:`KernelRFM.fit`.
    """

    alpha: torch.Tensor
    preds: torch.Tensor
    grad_kernel: torch.Tensor  # (n, n): K (gaussian), K/dist (laplace), 2·xᵀMx' (quadratic)
    self_coef: torch.Tensor | None  # (n, c): Σ_j K̃_ij α_j, subtracted at x_i's own coordinates
    solver: str


class KernelRFM:
    """The numerical core, free of run-directory concerns (tests and bench drive it directly).

    ``hot`` (N, k) are the positions of the k ones of each input (a, p + b [, 2p + task]), the r-th lying
    in ``slot_ranges[r]``; the first ``n_train`` rows are the training points. ``labels`` (N,) are class
    indices in [0, n_classes).
    """

    def __init__(
        self,
        hot: np.ndarray,
        labels: np.ndarray,
        n_train: int,
        dim: int,
        n_classes: int,
        slot_ranges: list[tuple[int, int]],
        kernel: str = "gaussian",
        bandwidth: float = 2.5,
        ridge: float = 0.0,
        agop_power: float = 0.5,
        centering: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"unknown RFM kernel '{kernel}' (choose {', '.join(KERNELS)})")
        self.dev = torch.device(device)
        self.dt = torch.float64
        self.kernel, self.L, self.ridge = kernel, float(bandwidth), float(ridge)
        self.power, self.centering = float(agop_power), bool(centering)
        self.d, self.c, self.n = int(dim), int(n_classes), int(n_train)
        self.hot = torch.as_tensor(np.asarray(hot), dtype=torch.long, device=self.dev)
        self.N, self.k = self.hot.shape
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self.dev)
        self.Y = torch.nn.functional.one_hot(self.labels, self.c).to(self.dt)
        self.timings: dict[str, float] = {"kernel": 0.0, "solve": 0.0, "predict": 0.0, "update": 0.0}
        # coordinate range of each one-hot slot: a → [0, p), b → [p, 2p), task → [2p, 2p + T)
        self._ranges = [(int(lo), int(hi)) for lo, hi in slot_ranges]
        self._groups = [
            self._padded_groups(self.hot[: self.n, r], lo, hi) for r, (lo, hi) in enumerate(self._ranges)
        ]
        self._ar = torch.arange(self.n, device=self.dev)
        self._bufs: dict[str, torch.Tensor] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    # ------------------------------------------------------------------ setup
    def _padded_groups(self, col: torch.Tensor, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Training indices grouped by the coordinate ``col`` holds: a (hi - lo, width) index matrix.

        Padding is index n: a zero row appended to α (so it contributes nothing); K̃ is indexed with it
        clamped. A coordinate no training point has gets a row of padding (its Jacobian part is 0).
        """
        if int(col.min()) < lo or int(col.max()) >= hi:
            raise ValueError(f"one-hot positions outside their slot [{lo}, {hi})")
        rel = col - lo
        counts = torch.bincount(rel, minlength=hi - lo)
        width = max(int(counts.max()), 1)
        order = torch.argsort(rel, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(self.n, device=self.dev) - torch.repeat_interleave(starts, counts)
        idx = torch.full((hi - lo, width), self.n, dtype=torch.long, device=self.dev)
        idx[rel[order], slot] = order
        return idx, idx.clamp(max=self.n - 1).reshape(-1), width

    def _buf(self, name: str, *shape: int) -> torch.Tensor:
        """A persistent scratch tensor: the big (N, n) arrays are reused, not re-allocated, each
        iteration (fresh 50-100 MB blocks cost ~90k page faults, ~15 % of an iteration at p = 61)."""
        t = self._bufs.get(name)
        if t is None or t.numel() < math.prod(shape):
            t = self._bufs[name] = torch.empty(math.prod(shape), dtype=self.dt, device=self.dev)
        return t[: math.prod(shape)].view(*shape)

    # ------------------------------------------------------------------ kernel + solve
    def _inner(self, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Z = M x_j for the training points as columns (d, n), q = xᵀMx for every point (N,))."""
        Z = M[:, self.hot[: self.n]].sum(-1)
        q = M[self.hot[:, :, None], self.hot[:, None, :]].sum((1, 2))
        return Z, q

    def _gather_sum(self, Z: torch.Tensor) -> torch.Tensor:
        """Q[i, j] = x_iᵀ M x_j (N, n): rows of Z picked by each point's one-hot positions, summed."""
        Q = torch.index_select(Z, 0, self.hot[:, 0])
        for r in range(1, self.k):
            Q += torch.index_select(Z, 0, self.hot[:, r])
        return Q

    def _gaussian(self, Z: torch.Tensor, q: torch.Tensor) -> torch.Tensor | None:
        """K by products of gathered rows: exp(-‖x_i - x_j‖²_M/2L²) = s_i s_j Π_r exp(Z[hot_ir, j]/L²).

        One-hot inputs make the exponent a sum of per-slot lookups, so the (N, n) matrix needs no exp,
        only gathers and products (3x less work than distance-then-exp). None when a factor could leave
        the double range (huge M); the caller then takes the direct route.
        """
        g = 1.0 / (2.0 * self.L**2)
        first = 2.0 * g * Z - g * q[None, : self.n]  # the column factor s_j folded into slot 0
        rest = 2.0 * g * Z
        if max(float(first.abs().max()), float(rest.abs().max()), float(g * q.abs().max())) > 150.0:
            return None
        first.exp_()
        rest.exp_()
        K = torch.index_select(first, 0, self.hot[:, 0], out=self._buf("K", self.N, self.n))
        tmp = self._buf("tmp", self.N, self.n)
        for r in range(1, self.k):
            K *= torch.index_select(rest, 0, self.hot[:, r], out=tmp)
        K *= torch.exp(-g * q)[:, None]
        return K

    def fit(self, M: torch.Tensor) -> Fit:
        t0 = time.perf_counter()
        Z, q = self._inner(M)
        n = self.n
        K = self._gaussian(Z, q) if self.kernel == "gaussian" else None
        if K is not None:
            grad_kernel = K[:n]
        elif self.kernel == "quadratic":
            Q = self._gather_sum(Z)
            grad_kernel = 2.0 * Q[:n]
            K = Q.square_()
        else:
            # squared M-distance, in place: q_i + q_j - 2 x_iᵀMx_j (≥ 0 up to round-off)
            D = self._gather_sum(Z).mul_(-2.0).add_(q[:, None]).add_(q[None, :n]).clamp_(min=0.0)
            if self.kernel == "gaussian":
                K = D.mul_(-1.0 / (2.0 * self.L**2)).exp_()
                grad_kernel = K[:n]
            else:  # laplace
                D.sqrt_()
                dist = D[:n].clone()
                K = D.mul_(-1.0 / self.L).exp_()
                grad_kernel = torch.where(
                    dist < 1e-10, torch.zeros((), dtype=self.dt, device=self.dev), K[:n] / dist
                )
        t1 = time.perf_counter()
        Ktr = K[:n]
        alpha, solver = self._solve(Ktr)
        t2 = time.perf_counter()
        preds = K @ alpha
        if self.kernel == "gaussian":
            self_coef = preds[:n]
        elif self.kernel == "laplace":
            self_coef = grad_kernel @ alpha
        else:
            self_coef = None
        t3 = time.perf_counter()
        self.timings["kernel"] += t1 - t0
        self.timings["solve"] += t2 - t1
        self.timings["predict"] += t3 - t2
        return Fit(alpha=alpha, preds=preds, grad_kernel=grad_kernel, self_coef=self_coef, solver=solver)

    def _solve(self, Ktr: torch.Tensor) -> tuple[torch.Tensor, str]:
        """Cholesky (the kernel is PD); LU if round-off breaks definiteness; least squares if singular."""
        A = Ktr if self.ridge == 0 else Ktr + self.ridge * torch.eye(self.n, dtype=self.dt, device=self.dev)
        Y = self.Y[: self.n]
        chol, info = torch.linalg.cholesky_ex(
            A, out=(self._buf("chol", self.n, self.n), torch.empty((), dtype=torch.int32, device=self.dev))
        )
        if int(info) == 0:
            return torch.cholesky_solve(Y, chol), "cholesky"
        try:
            return torch.linalg.solve(Ktr if self.ridge == 0 else A, Y), "lu"
        except RuntimeError:
            return torch.linalg.pinv(A, hermitian=True) @ Y, "pinv"

    # ------------------------------------------------------------------ AGOP
    def agop(self, M: torch.Tensor, fit: Fit) -> torch.Tensor:
        """AGOP of f over the training inputs (Jacobians centred if ``centering``), (d, d)."""
        n, c, d = self.n, self.c, self.d
        Kg = fit.grad_kernel
        alpha_pad = torch.cat([fit.alpha, torch.zeros(1, c, dtype=self.dt, device=self.dev)])
        chunk = max(1, min(n, CHUNK_BYTES // (8 * d * c)))
        on_cpu = self.dev.type == "cpu"
        H = np.zeros((d, d)) if on_cpu else torch.zeros(d, d, dtype=self.dt, device=self.dev)
        # Σ_i R[u, :, i] in closed form (K̃ symmetric): Σ_{j: x_j[u]=1} α_j Σ_i K̃_ij - Σ_{i: x_i[u]=1} self_i
        own = fit.alpha * Kg.sum(1, keepdim=True)
        if fit.self_coef is not None:
            own = own - fit.self_coef
        rsum = torch.zeros(d, c, dtype=self.dt, device=self.dev)
        for r in range(self.k):
            rsum.index_add_(0, self.hot[:n, r], own)
        buf = self._buf("R", d * c * chunk)
        for i0 in range(0, n, chunk):
            w = min(n, i0 + chunk) - i0
            R = buf[: d * c * w].view(d, c, w)
            for slot, ((lo, hi), (idx, kidx, width)) in enumerate(
                zip(self._ranges, self._groups, strict=True)
            ):
                # R[u, :, i] = Σ_{j: x_j[u]=1} α_j K̃_ji, batched over the coordinates u of one one-hot slot
                rows = self._buf(f"rows{slot}", kidx.numel(), w)
                torch.index_select(Kg[:, i0 : i0 + w], 0, kidx, out=rows)
                rows = rows.view(hi - lo, width, w)
                torch.bmm(alpha_pad[idx].transpose(1, 2), rows, out=R[lo:hi])
            if fit.self_coef is not None:
                cols = self._ar[:w]
                for r in range(self.k):
                    R[self.hot[i0 : i0 + w, r], :, cols] -= fit.self_coef[i0 : i0 + w]
            flat = R.view(d, c * w)
            if on_cpu:
                H += self._syrk(flat.numpy())
            else:
                H += flat @ flat.T
        Ht = torch.from_numpy(H) if on_cpu else H
        if self.centering:  # Σ_i (J_i - J̄)ᵀ(J_i - J̄) = Σ_i J_iᵀJ_i - n J̄ᵀJ̄
            Ht = Ht - rsum @ rsum.T / n
        scale = {"gaussian": 1.0 / self.L**2, "laplace": 1.0 / self.L, "quadratic": 1.0}[self.kernel]
        G = (scale**2 / n) * (M @ Ht.to(self.dt) @ M)
        return 0.5 * (G + G.T)

    def _syrk(self, A: np.ndarray) -> np.ndarray:
        """A Aᵀ through BLAS syrk (numpy spots ``A @ A.T``: half a general product's flops), split by
        columns over torch's thread count in Python threads (BLAS releases the GIL). numpy's own OpenBLAS
        threads are kept at 1: on a busy 2-core box they spun against torch's (an iteration went from
        0.48 s to 4.7 s with both at 2 threads)."""
        k = min(torch.get_num_threads(), 8)
        if k <= 1 or A.shape[1] < 4096:
            return A @ A.T
        if self._pool is None or self._pool_size < k:
            self._pool, self._pool_size = ThreadPoolExecutor(max_workers=k, thread_name_prefix="rfm-syrk"), k
        cuts = [A.shape[1] * i // k for i in range(k + 1)]
        parts = [A[:, lo:hi] for lo, hi in zip(cuts, cuts[1:], strict=False)]
        return sum(self._pool.map(lambda P: P @ P.T, parts))

    def power_of(self, G: torch.Tensor) -> torch.Tensor:
        """G^s by eigendecomposition (G symmetric PSD up to round-off)."""
        if self.power == 1:
            return G
        w, V = torch.linalg.eigh(G)
        w = w.clamp(min=0.0).pow(self.power)
        return (V * w) @ V.T

    def update(self, M: torch.Tensor, fit: Fit) -> torch.Tensor:
        t0 = time.perf_counter()
        G = self.agop(M, fit)
        out = self.power_of(G)
        self.timings["update"] += time.perf_counter() - t0
        return out

    def step(self, M: torch.Tensor) -> tuple[Fit, torch.Tensor]:
        fit = self.fit(M)
        return fit, self.update(M, fit)


# --------------------------------------------------------------------------- inputs


def one_hot_layout(data: Any, p: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]], int]:
    """(order: train points first, hot positions in that order, slot ranges, input dim) for a Dataset."""
    order = np.concatenate([np.flatnonzero(data.is_train), np.flatnonzero(~data.is_train)])
    cols = [data.a[order], p + data.b[order]]
    ranges = [(0, p), (p, 2 * p)]
    n_tasks = len(data.tasks)
    if n_tasks > 1:  # Mallinar et al. App. E: a task indicator appended to the input
        cols.append(2 * p + data.task_ids[order])
        ranges.append((2 * p, 2 * p + n_tasks))
    return order, np.stack(cols, axis=1).astype(np.int64), ranges, ranges[-1][1]
