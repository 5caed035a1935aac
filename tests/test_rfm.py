"""RFM (kernel ridge + AGOP) and the feature-matrix progress measures: behaviour a user relies on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from grok_tui.analysis import agop as ag
from grok_tui.analysis.dlog import dlog_table
from grok_tui.checkpoints import load_checkpoint
from grok_tui.config import parse_config
from grok_tui.models import rfm
from grok_tui.recorder import write_json_atomic
from grok_tui.runs import RunDir
from grok_tui.tasks import Task, build_dataset
from grok_tui.training import rfm as rfm_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- circulant deviation


def _circulant(c: np.ndarray) -> np.ndarray:
    m = len(c)
    i, j = np.indices((m, m))
    return c[(j - i) % m]


def _hankel(c: np.ndarray) -> np.ndarray:
    m = len(c)
    i, j = np.indices((m, m))
    return c[(i + j) % m]


def test_circulant_deviation_is_zero_on_a_circulant_in_its_direction_only() -> None:
    A = _circulant(np.random.default_rng(0).uniform(size=13))
    assert ag.circulant_deviation(A, ag.CIRCULANT) == pytest.approx(0.0, abs=1e-15)
    assert ag.circulant_deviation(A, ag.HANKEL) > 0.1


def test_circulant_deviation_is_zero_on_a_hankel_block_in_the_other_direction() -> None:
    A = _hankel(np.random.default_rng(1).uniform(size=13))
    assert ag.circulant_deviation(A, ag.HANKEL) == pytest.approx(0.0, abs=1e-15)
    assert ag.circulant_deviation(A, ag.CIRCULANT) > 0.1


def test_circulant_deviation_is_positive_on_noise_and_undefined_on_zero() -> None:
    A = np.random.default_rng(2).standard_normal((31, 31))
    for direction in ag.DIRECTIONS:
        assert 0.8 < ag.circulant_deviation(A, direction) <= 1.0
    assert np.isnan(ag.circulant_deviation(np.zeros((5, 5))))


def test_discrete_log_view_turns_a_multiplicative_block_circulant() -> None:
    p = 13
    log = dlog_table(p)
    c = np.random.default_rng(3).uniform(size=p - 1)
    A = np.zeros((p, p))  # A[b, a] = c[log a - log b]: depends on a / b only
    for b in range(1, p):
        for a in range(1, p):
            A[b, a] = c[(log[a] - log[b]) % (p - 1)]
    assert ag.circulant_deviation(A[1:, 1:], ag.CIRCULANT) > 0.1  # natural order: no structure
    assert ag.circulant_deviation(ag.dlog_view(A, p), ag.CIRCULANT) == pytest.approx(0.0, abs=1e-15)


def test_task_geometry_names_the_measured_direction_per_operation() -> None:
    assert ag.task_geometry(["a + b"]) == (ag.CIRCULANT, False)
    assert ag.task_geometry(["a - b"]) == (ag.HANKEL, False)
    assert ag.task_geometry(["a * b"]) == (ag.CIRCULANT, True)
    assert ag.task_geometry(["a / b"]) == (ag.HANKEL, True)
    assert ag.task_geometry(["a * b"], "off") == (None, False)
    assert ag.task_geometry(["a**2 + b**2"]) == (None, False)


def test_block_spectrum_of_a_single_frequency_circulant() -> None:
    p, k = 17, 3
    t = np.arange(p)
    A = _circulant(np.cos(2 * np.pi * k * t / p))
    spec = ag.block_spectrum(A)
    assert spec.shape == (p // 2,)
    assert np.argmax(spec) == k - 1
    assert np.delete(spec, k - 1).max() < 1e-9


# --------------------------------------------------------------------------- alignment, AGOP


def test_agop_alignment_is_one_for_identical_and_scaled_matrices() -> None:
    M = np.random.default_rng(4).standard_normal((9, 9))
    assert ag.agop_alignment(M, M) == pytest.approx(1.0)
    assert ag.agop_alignment(M, 3.5 * M) == pytest.approx(1.0)
    assert ag.agop_alignment(np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(0.0)


def test_agop_of_a_linear_map_is_its_gram_matrix() -> None:
    W = np.random.default_rng(5).standard_normal((6, 4))  # f(x) = x @ W: J(x) = W everywhere
    J = np.broadcast_to(W, (20, 6, 4))
    np.testing.assert_allclose(ag.agop(J), W @ W.T, rtol=1e-12)
    np.testing.assert_allclose(ag.agop(J, centering=True), 0.0, atol=1e-12)


def test_sym_power_square_root_squares_back() -> None:
    B = np.random.default_rng(6).standard_normal((8, 5))
    G = B @ B.T  # rank 5: three zero eigenvalues
    R = ag.sym_power(G, 0.5)
    np.testing.assert_allclose(R @ R, G, atol=1e-10)


@pytest.mark.parametrize("act", ["quadratic", "relu"])
@pytest.mark.parametrize("bias", [False, True])
def test_mlp_agop_closed_form_matches_explicit_jacobians(act: str, bias: bool) -> None:
    p, h = 7, 11
    rng = np.random.default_rng(7)
    W1, W2 = rng.standard_normal((2 * p, h)), rng.standard_normal((h, p))
    b1 = rng.standard_normal(h) if bias else None
    a, b = rng.integers(0, p, 30), rng.integers(0, p, 30)
    hot = np.stack([a, p + b], axis=1)
    X = np.zeros((30, 2 * p))
    X[np.arange(30), a] = 1
    X[np.arange(30), p + b] = 1
    Z = X @ W1 + (0 if b1 is None else b1)
    slopes = 2 * Z if act == "quadratic" else (Z > 0).astype(float)
    J = np.stack([W1 @ np.diag(s) @ W2 for s in slopes])  # ∂f/∂x of f(x) = σ(xW1 + b1) W2
    for centering in (False, True):
        got = ag.mlp_agop(W1, W2, hot, act=act, b1=b1, centering=centering)
        np.testing.assert_allclose(got, ag.agop(J, centering), rtol=1e-9, atol=1e-12)
    nfm = ag.neural_feature_matrix(W1)
    assert nfm.shape == (2 * p, 2 * p)
    np.testing.assert_allclose(nfm, W1 @ W1.T)


def test_mlp_measures_on_a_fourier_first_layer() -> None:
    """A first layer of matched-phase cosines (the grokked addition circuit) has a circulant NFM block."""
    p = 13
    rng = np.random.default_rng(8)
    k = np.repeat([1, 4, 5], 4)  # per frequency, phases a quarter-turn apart: the cos(w(a+b)) parts cancel
    phase = np.tile(np.arange(4) * np.pi / 4, 3) + rng.uniform(0, 1, 12)[[0] * 4 + [4] * 4 + [8] * 4]
    h = len(k)
    t = np.arange(p)[:, None]
    col = np.cos(2 * np.pi * k * t / p + phase)
    W1 = np.concatenate([col, col])  # a and b rows share each unit's frequency and phase
    W2 = rng.standard_normal((h, p))
    spec = parse_config(
        '[experiments.m]\ntask = "add"\np = 13\nmodel = { kind = "mlp" }\n', Path("x.toml")
    ).runs[0]
    data = build_dataset([Task.parse("add", p)], p, 0.5, 0, "nanda")
    out = ag.mlp_measures({"mlp.0.W": W1, "mlp.1.W": W2}, data, spec)
    assert set(out) == {"circulant_deviation", "circulant_deviation_nfm", "nfa_corr", "nfa_corr_nodiag"}
    assert out["circulant_deviation_nfm"] < 1e-12
    assert -1 <= out["nfa_corr"] <= 1


# --------------------------------------------------------------------------- the kernel machine


def _engine(p: int, kernel: str, frac: float = 0.6, task: str = "add") -> tuple[rfm.KernelRFM, np.ndarray]:
    data = build_dataset([Task.parse(task, p)], p, frac, 0, "nanda")
    order, hot, ranges, d = rfm.one_hot_layout(data, p)
    n = int(data.is_train.sum())
    eng = rfm.KernelRFM(hot, data.labels[order], n, d, p, ranges, kernel=kernel, bandwidth=2.5)
    return eng, hot


def _random_features(d: int, seed: int) -> torch.Tensor:
    B = np.random.default_rng(seed).standard_normal((d, d)) / np.sqrt(d)
    return torch.from_numpy(0.5 * np.eye(d) + B @ B.T)


@pytest.mark.parametrize("kernel", rfm.KERNELS)
def test_ridgeless_kernel_solve_interpolates_the_training_data(kernel: str) -> None:
    eng, _ = _engine(11, kernel)
    fit = eng.fit(_random_features(eng.d, 0))
    Y = eng.Y[: eng.n].numpy()
    np.testing.assert_allclose(fit.preds[: eng.n].numpy(), Y, atol=1e-7)


@pytest.mark.parametrize("kernel", rfm.KERNELS)
def test_closed_form_agop_matches_finite_difference_jacobians(kernel: str) -> None:
    """The batched analytic Jacobians equal ∂f/∂x of f(x) = Σ_j α_j k(x, x_j; M), centred."""
    p = 5
    eng, hot = _engine(p, kernel, frac=0.7)
    M = _random_features(eng.d, 1)
    fit = eng.fit(M)
    G = eng.agop(M, fit).numpy()
    n, d, L = eng.n, eng.d, eng.L
    Mn, alpha = M.numpy(), fit.alpha.numpy()
    Xtr = np.zeros((n, d))
    for r in range(hot.shape[1]):
        Xtr[np.arange(n), hot[:n, r]] = 1

    def f(x: np.ndarray) -> np.ndarray:
        diff = x[None, :] - Xtr
        if kernel == "quadratic":
            k = (Xtr @ Mn @ x) ** 2
        else:
            sq = np.einsum("jd,de,je->j", diff, Mn, diff)
            k = np.exp(-sq / (2 * L**2)) if kernel == "gaussian" else np.exp(-np.sqrt(np.maximum(sq, 0)) / L)
        return k @ alpha

    h = 1e-5
    J = np.empty((n, d, eng.c))
    for i in range(n):
        for u in range(d):
            e = np.zeros(d)
            e[u] = h
            J[i, u] = (f(Xtr[i] + e) - f(Xtr[i] - e)) / (2 * h)  # central: the Laplace cusp at x_i gives 0
    np.testing.assert_allclose(G, ag.agop(J, centering=True), rtol=1e-5, atol=1e-9 * np.abs(G).max())


@pytest.mark.parametrize("task", ["add", "sub", "mul", "div"])
def test_rfm_feature_block_takes_the_shape_task_geometry_names(task: str) -> None:
    """Pins the measured directions: after a few iterations the named one is near 0, the other near 1."""
    p = 13
    eng, _ = _engine(p, "gaussian", frac=0.8, task=task)
    M = torch.eye(eng.d, dtype=torch.float64)
    for _ in range(6):
        _, M = eng.step(M)
    direction, use_dlog = ag.task_geometry([Task.parse(task, p).expr])
    assert use_dlog == (task in ("mul", "div"))
    A = ag.measured_block(M.numpy(), p, use_dlog)
    other = ag.HANKEL if direction == ag.CIRCULANT else ag.CIRCULANT
    assert ag.circulant_deviation(A, direction) < 0.1 < 0.9 < ag.circulant_deviation(A, other)


def _spec(toml_model: str, p: int = 17, frac: float = 0.8, steps: int = 14, task: str = "add") -> dict:
    text = f"""
[experiments.rfm-small]
task = "{task}"
p = {p}
train_frac = {frac}
steps = {steps}
checkpoint_every = 5
model = {{ kind = "rfm", {toml_model} }}
"""
    return parse_config(text, Path("x.toml")).runs[0]


def _run_dir(tmp_path: Path, spec: dict, name: str = "seed0") -> Path:
    d = tmp_path / spec["experiment"] / name
    write_json_atomic(d / "spec.json", spec)
    return d


def test_gaussian_rfm_groks_small_addition_and_writes_a_readable_run(tmp_path: Path) -> None:
    spec = _spec('kernel = "gaussian"')
    d = _run_dir(tmp_path, spec)
    assert rfm_training.run(spec, d, "cpu", lambda: False) == "done"
    run = RunDir(d)
    rows = run.metrics()
    assert [r["step"] for r in rows] == list(range(15))  # M₀ = I, then 14 iterations
    assert all(r["train_acc"] == 1.0 and r["train_loss"] < 1e-12 for r in rows)  # ridgeless: interpolates
    assert rows[0]["test_acc"] < 0.1 and rows[-1]["test_acc"] == 1.0
    assert run.summary().grokked_at is not None and run.summary().grokked_at > 3
    dev = [r["circulant_deviation"] for r in rows]
    assert dev[0] is None  # M₀ = I has a zero off-diagonal block
    assert dev[-1] < 0.5 * dev[1] and all(x > y for x, y in zip(dev[1:6], dev[2:7], strict=True))
    assert {"test_correct_loss", "train_correct_loss", "weight_norm", "agop_alignment"} <= set(rows[-1])
    fourier = run.fourier()
    assert len(fourier) == 15 and len(fourier[-1]["embed"]) == 17 // 2
    assert run.checkpoint_steps() == [0, 5, 10, 14]
    arrays, meta = load_checkpoint(run.checkpoint_path(14))
    assert arrays["M"].shape == (34, 34) and meta["test_acc"] == 1.0
    np.testing.assert_allclose(arrays["M"], arrays["M"].T)
    progress = RunDir(d).progress()
    assert [r["step"] for r in progress] == list(range(15)) and all(r["final"] for r in progress)
    align = [r["agop_alignment_final"] for r in progress]
    assert align[-1] > 0.99 and align[-1] > align[5] > align[0]


@pytest.mark.parametrize("kernel", ["laplace", "quadratic"])
def test_other_kernels_run(tmp_path: Path, kernel: str) -> None:
    spec = _spec(f'kernel = "{kernel}"', p=11, steps=3)
    d = _run_dir(tmp_path, spec)
    assert rfm_training.run(spec, d, "cpu", lambda: False) == "done"
    rows = RunDir(d).metrics()
    assert len(rows) == 4 and all(r["train_acc"] == 1.0 for r in rows)
    assert all(np.isfinite(r["test_loss"]) for r in rows)


def test_stop_then_resume_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    spec = _spec('kernel = "gaussian"', p=13, steps=8)
    full = _run_dir(tmp_path, spec, "full")
    assert rfm_training.run(spec, full, "cpu", lambda: False) == "done"

    part = _run_dir(tmp_path, spec, "part")
    polls = iter(range(100))
    assert rfm_training.run(spec, part, "cpu", lambda: next(polls) >= 4) == "stopped"
    assert [r["step"] for r in RunDir(part).metrics()] == [0, 1, 2, 3]
    assert not RunDir(part).progress()[-1]["final"]
    assert rfm_training.run(spec, part, "cpu", lambda: False) == "done"

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "time"} for r in rows]

    assert strip(RunDir(part).metrics()) == strip(RunDir(full).metrics())
    assert RunDir(part).progress() == RunDir(full).progress()
    a, _ = load_checkpoint(RunDir(part).checkpoint_path(8))
    b, _ = load_checkpoint(RunDir(full).checkpoint_path(8))
    np.testing.assert_array_equal(a["M"], b["M"])


def test_mixture_adds_a_task_indicator_and_reports_per_task(tmp_path: Path) -> None:
    """Mallinar et al. App. E: one machine for x+y and x-y, a task one-hot appended to the input."""
    spec = {**_spec('kernel = "gaussian"', p=7, steps=2), "tasks": ["a + b", "a - b"]}
    d = _run_dir(tmp_path, spec)
    assert rfm_training.run(spec, d, "cpu", lambda: False) == "done"
    row = RunDir(d).metrics()[-1]
    assert set(row["tasks"]) == {"a + b", "a - b"}
    arrays, _ = load_checkpoint(RunDir(d).checkpoint_path(2))
    assert arrays["M"].shape == (16, 16)
    json.dumps(row)
