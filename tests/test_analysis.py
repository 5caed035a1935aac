"""Mechanistic measures on synthetic weights whose Fourier content is known (issue 3 acceptance)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grok_tui.analysis import keyfreq
from grok_tui.analysis.fourier import (
    component_norms,
    fft1d,
    fft2d,
    fourier_basis,
    freq_norms,
    sum_directions,
)
from grok_tui.analysis.measures import (
    embed_matrix,
    fcr,
    ffd,
    gini,
    logit_spectrum,
    neuron_logit_map,
    spectrum,
    sum_sq_weights,
)
from grok_tui.analysis.phase import phase_at, phase_boundaries
from grok_tui.analysis.progress import excluded_logits, grid_logits, progress_measures
from grok_tui.analysis.structure import detect_structure
from grok_tui.analysis.synthetic import fourier_logits, fourier_rows, neuron_acts, transformer_arrays
from grok_tui.tasks import Task, build_dataset

P = 31
KEYS = [3, 7, 12]


def dataset(task: str, p: int = P, frac: float = 0.3):
    return build_dataset([Task.parse(task, p)], p, frac, 0, "nanda")


# --------------------------------------------------------------------------- transforms


def test_fft2d_matches_the_papers_einsum_and_is_orthonormal() -> None:
    rng = np.random.default_rng(0)
    M = rng.standard_normal((P * P, 3))
    F = fourier_basis(P)
    ref = np.einsum("xyz,fx,Fy->fFz", M.reshape(P, P, 3), F, F)
    X = fft2d(M)
    assert np.allclose(X, ref)
    assert np.isclose(np.sum(X**2), np.sum(M**2))  # Parseval
    assert np.allclose(fft2d(M.reshape(P, P, 3)), X)  # grid form
    assert np.allclose(fft2d(M[:, 0]), X[..., 0])  # one neuron
    assert np.allclose(fft1d(M.reshape(P, P * 3), axis=0), F @ M.reshape(P, P * 3))


def test_sum_directions_are_the_briefs_unit_vectors() -> None:
    F = fourier_basis(P)
    U = sum_directions(P, KEYS)
    assert np.allclose(U @ U.T, np.eye(2 * len(KEYS)))
    for i, k in enumerate(KEYS):
        c, s = F[2 * k - 1], F[2 * k]
        u = (np.outer(c, c) - np.outer(s, s)).ravel() / math.sqrt(2)
        v = (np.outer(s, c) + np.outer(c, s)).ravel() / math.sqrt(2)
        assert np.isclose(abs(U[2 * i] @ u), 1) and np.isclose(abs(U[2 * i + 1] @ v), 1)


def test_component_norms_find_the_planted_frequencies() -> None:
    rng = np.random.default_rng(1)
    W = fourier_rows(P, KEYS, 16, rng)
    per_freq = freq_norms(W)
    assert sorted(np.argsort(per_freq)[-3:] + 1) == KEYS
    assert np.allclose(component_norms(W.astype(np.float32)), component_norms(W), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- Gini, FFD, FCR


def test_gini_is_near_one_for_one_frequency_and_zero_for_flat() -> None:
    rng = np.random.default_rng(2)
    one = spectrum(fourier_rows(P, [5], 16, rng))
    assert one.gini() == pytest.approx(1 - 2 / (P - 1))  # 2 spikes (cos_5, sin_5) of P-1 components
    assert one.gini() > 0.9
    flat = spectrum(fourier_basis(P).T @ np.eye(P))  # every component has norm 1
    assert flat.gini() == pytest.approx(0.0, abs=1e-12)
    assert flat.gini(constant=True) == pytest.approx(0.0, abs=1e-12)
    assert gini(np.zeros(5)) == 0.0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)


@pytest.mark.parametrize("p", [31, 113])
def test_ffd_of_key_frequencies_is_2K_over_2_floor_half_p(p: int) -> None:
    rng = np.random.default_rng(3)
    ks = [1, 9, p // 2]
    sp = spectrum(fourier_rows(p, ks, 24, rng, noise=1e-3))
    assert sp.ffd(0.5) == pytest.approx(2 * len(ks) / (2 * (p // 2)))
    # key freqs with cos only (Furuta's "cos-biased" multiplication signature) lower FCR
    biased = spectrum(fourier_rows(p, ks, 24, rng, sin_amp=0.0, noise=1e-3))
    assert biased.fcr() < sp.fcr() - 2 / (p // 2)
    flat = spectrum(fourier_basis(p).T @ np.eye(p))
    assert flat.ffd(0.5) == 1.0 and flat.fcr() == pytest.approx(1.0)


def test_fcr_is_one_when_balanced_and_zero_when_cos_only() -> None:
    assert fcr(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 1.0
    assert fcr(np.array([1.0, 2.0]), np.array([0.0, 0.0])) == 0.0
    assert fcr(np.array([2.0, 1.0]), np.array([1.0, 2.0])) == 0.5
    assert ffd(np.array([1.0, 0.4, 0.6]), np.array([0.0, 0.0, 1.0]), eta=0.5) == 3 / 6


def test_furuta_signature_multiplication_is_sparse_only_in_the_log_basis() -> None:
    """W_E periodic in log_g(x) (a multiplication model): dense in the standard basis, sparse in dlog."""
    rng = np.random.default_rng(4)
    arrays = transformer_arrays(P, [2, 5], rng, basis="dlog")
    E = embed_matrix(arrays, P)
    std, dl = spectrum(E), spectrum(E, "dlog", P)
    assert keyfreq.from_component_norms(dl.norms) == [2, 5]
    assert dl.ffd() == pytest.approx(4 / (P - 2))  # n = p-1 even: p-2 components besides sin_{n/2}
    assert std.ffd() > 3 * dl.ffd()
    assert dl.gini() > std.gini()


# --------------------------------------------------------------------------- W_E, W_L, SSW


def test_neuron_logit_map_and_its_fast_spectrum_agree() -> None:
    rng = np.random.default_rng(5)
    arrays = transformer_arrays(P, KEYS, rng)
    W_L = neuron_logit_map(arrays, P)
    ref = (arrays["blocks.0.W_out"].astype(float) @ arrays["W_U"].astype(float))[:, :P].T
    assert W_L.shape == (P, 64) and np.allclose(W_L, ref)
    fast = logit_spectrum(arrays, P)
    assert np.allclose(fast.norms, spectrum(W_L).norms, rtol=1e-4, atol=1e-4)
    assert keyfreq.from_component_norms(fast.norms) == KEYS
    assert keyfreq.from_component_norms(spectrum(embed_matrix(arrays, P)).norms) == KEYS
    # the MLP models: the first layer's a-half and the last layer play W_E and W_L
    mlp = {"mlp.0.W": arrays["W_E"][:P].repeat(2, 0), "mlp.1.W": arrays["W_U"][:, :P]}
    assert np.allclose(neuron_logit_map(mlp, P), arrays["W_U"][:, :P].T)
    assert embed_matrix(mlp, P).shape == (P, 32)
    assert neuron_logit_map({"W_E": arrays["W_E"]}, P) is None


def test_sum_sq_weights_counts_every_parameter_but_not_analysis() -> None:
    arrays = {"W_E": np.ones((2, 3)), "b": np.full(2, 2.0), "analysis/key_freqs": np.array([99])}
    assert sum_sq_weights(arrays) == 6 + 8


# --------------------------------------------------------------------------- key frequencies


@pytest.mark.parametrize("task", ["add", "sub", "mul", "div"])
def test_all_three_rules_recover_the_planted_key_frequencies(task: str) -> None:
    d = dataset(task)
    st = detect_structure(d.a, d.b, d.labels, P)
    assert st is not None
    rng = np.random.default_rng(6)
    arrays = transformer_arrays(P, KEYS, rng, basis=st.basis, noise=0.01)
    embed = keyfreq.from_component_norms(spectrum(embed_matrix(arrays, P), st.basis, P).norms)
    logit = keyfreq.from_component_norms(logit_spectrum(arrays, P, st.basis).norms)
    acts, truth = neuron_acts(d.a, d.b, P, KEYS, rng, basis=st.basis)
    neuron = keyfreq.neuron_rule(acts[st.rows], st.n)
    assert embed == logit == neuron.freqs == KEYS
    assert neuron.rule == "neuron"
    assert np.array_equal(neuron.neuron_freq, truth)  # noise and dead neurons → -1
    assert neuron.neuron_frac[truth > 0].min() > 0.99
    assert neuron.cluster_sizes() == {-1: 6, 3: 8, 7: 8, 12: 8}


def test_neuron_rule_tests_the_top_frequency_and_respects_the_cut() -> None:
    d = dataset("add")
    st = detect_structure(d.a, d.b, d.labels, P)
    rng = np.random.default_rng(7)
    acts, _ = neuron_acts(d.a, d.b, P, [P // 2], rng)  # k = 15: the Colab's loop never tests it
    assert keyfreq.neuron_rule(acts[st.rows], P).freqs == [P // 2]
    noisy = acts + rng.standard_normal(acts.shape).astype(np.float32)  # variance share ≪ 0.85
    assert keyfreq.neuron_rule(noisy[st.rows], P).freqs == []


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize(
    ("task", "basis", "sign"),
    [
        ("a + b", "standard", 1),
        ("a - b", "standard", -1),
        ("b - a + 3", "standard", -1),
        ("a + b + 7", "standard", 1),
        ("a * b", "dlog", 1),
        ("a / b", "dlog", -1),
        ("5 * a * b", "dlog", 1),
        ("a**2 + b", None, None),
        ("2*a + b", None, None),
        ("a**2 + a*b + b**2", None, None),
    ],
)
def test_structure_of_tasks(task: str, basis: str | None, sign: int | None) -> None:
    d = dataset(task)
    st = detect_structure(d.a, d.b, d.labels, P)
    if basis is None:
        assert st is None
        return
    assert (st.basis, st.sign) == (basis, sign)
    assert len(st.rows) == st.n**2
    assert detect_structure(d.a, d.b, d.labels, P, "standard" if basis == "dlog" else "dlog") is None


# --------------------------------------------------------------------------- restricted / excluded


@pytest.mark.parametrize("task", ["add", "sub", "mul", "div"])
def test_restricted_logits_of_a_pure_fourier_table_lose_nothing_and_excluded_are_at_chance(
    task: str,
) -> None:
    d = dataset(task)
    st = detect_structure(d.a, d.b, d.labels, P)
    L = fourier_logits(d.a, d.b, P, KEYS, st.sign, st.basis)
    m = progress_measures(L, d.labels, d.is_train, st, KEYS, per_freq=True)
    full = progress_measures(L, d.labels, d.is_train, st, range(1, st.n // 2 + 1))
    rows = st.rows
    logp = np.log(np.exp(L[rows, :P] - L[rows, :P].max(1, keepdims=True)).sum(1))
    true_loss = float(np.mean(logp - (L[rows, d.labels[rows]] - L[rows, :P].max(1))))
    assert m["restricted_loss"] == pytest.approx(true_loss, abs=1e-9)
    assert m["restricted_acc"] == 1.0
    assert m["excluded_loss"] == pytest.approx(math.log(P), abs=1e-9)  # uniform logits
    # Uniform logits tie every class, so their argmax (excluded_acc) is decided by round-off: assert
    # the logits themselves are flat instead.
    U = sum_directions(st.n, KEYS, st.sign)
    flat = excluded_logits(grid_logits(L, st), U)
    assert float(np.ptp(flat, axis=1).max()) < 1e-9
    assert full["restricted_loss"] == pytest.approx(true_loss, abs=1e-9)
    # removing one key frequency hurts, removing all of them leaves chance
    assert all(true_loss < v < math.log(P) for v in m["excluded_loss_per_freq"])


def test_restricted_drops_other_frequencies_and_keeps_the_per_class_bias() -> None:
    d = dataset("add")
    st = detect_structure(d.a, d.b, d.labels, P)
    rng = np.random.default_rng(8)
    bias = rng.standard_normal(P + 1)
    L = fourier_logits(d.a, d.b, P, KEYS, 1) + bias
    junk = fourier_logits(d.a, d.b, P, [1, 2], 1, scale=3.0) + rng.standard_normal(L.shape)
    clean = progress_measures(L, d.labels, d.is_train, st, KEYS)
    dirty = progress_measures(L + junk, d.labels, d.is_train, st, KEYS)
    assert dirty["restricted_loss"] == pytest.approx(clean["restricted_loss"], rel=0.15)
    assert (
        dirty["restricted_loss"]
        < progress_measures(L + junk, d.labels, d.is_train, st, [])["restricted_loss"]
    )
    # the excluded logits keep the bias (no correction): CE of the bias alone
    b = bias[:P]
    ce_bias = float(np.mean(np.log(np.exp(b).sum()) - b[d.labels[d.is_train]]))
    assert clean["excluded_loss"] == pytest.approx(ce_bias, abs=1e-9)
    for split in ("train", "test"):
        assert progress_measures(L, d.labels, d.is_train, st, KEYS, split)["restricted_acc"] == 1.0


# --------------------------------------------------------------------------- phase


def _row(step, train_acc, test_acc, train_loss=1.0, test_loss=5.0):
    return dict(step=step, train_acc=train_acc, test_acc=test_acc, train_loss=train_loss, test_loss=test_loss)


def test_phase_rule_walks_through_the_four_phases() -> None:
    rows = [
        _row(0, 0.01, 0.01),
        _row(100, 0.5, 0.01),
        _row(200, 1.0, 0.02, 1e-6, 20.0),
        _row(300, 1.0, 0.3, 1e-6, 8.0),
        _row(400, 1.0, 0.9, 1e-6, 0.5),
        _row(500, 1.0, 1.0, 1e-6, 1e-3),  # grokked: test loss still 1000x the train loss, generalised anyway
        _row(600, 1.0, 1.0, 1e-7, 5e-7),
    ]
    b = phase_boundaries(rows)
    assert (b.circuit_formation, b.cleanup, b.generalised) == (200, 400, 500)
    got = [phase_at(rows, r["step"]) for r in rows]
    assert got == ["memorisation"] * 2 + ["circuit formation"] * 2 + ["clean-up"] + ["generalised"] * 2
    # a later dip does not undo a phase; missing keys and NaN are skipped
    rows.append(_row(700, 0.5, float("nan")))
    assert phase_at(rows) == "generalised"
    assert phase_at([]) == "memorisation"
    assert phase_at([{"step": 5}]) == "memorisation"


def test_phase_boundaries_agree_with_the_verdict_of_grok_ls() -> None:
    """For any history, circuit formation starts at memorised at and generalised at grokked at."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from grok_tui.runs import first_step_at

    acc = st.one_of(st.floats(0, 1), st.just(float("nan")), st.none())

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(acc, acc), max_size=30))
    def check(accs) -> None:
        rows = [{"step": 10 * i, "train_acc": a, "test_acc": b} for i, (a, b) in enumerate(accs)]
        b = phase_boundaries(rows)
        memorised = first_step_at(rows, "train_acc")
        assert b.circuit_formation == memorised
        if memorised is not None:
            assert b.generalised == first_step_at([r for r in rows if r["step"] >= memorised], "test_acc")
        if b.generalised is not None:
            assert b.cleanup is not None and b.circuit_formation <= b.cleanup <= b.generalised
            assert phase_at(rows, b.generalised) == "generalised"

    check()


def test_a_high_plateau_starts_clean_up_halfway_to_1() -> None:
    """A large train fraction generalises part of the test set while it memorises (0.45 here, as the
    quick preset does): clean-up starts once test accuracy holds halfway from there to 1, not at 0.5."""
    accs = [
        0.03,
        0.45,
        0.46,
        0.48,
        0.49,
        0.5,
        0.51,
        0.52,
        0.54,
        0.59,
        0.66,
        0.77,
        0.88,
        0.95,
        0.97,
        0.98,
        1.0,
    ]
    rows = [_row(100 * i, 0.03 if i == 0 else 1.0, a) for i, a in enumerate(accs)]
    b = phase_boundaries(rows)
    assert (b.circuit_formation, b.cleanup, b.generalised) == (100, 1100, 1600)


def test_plateau_noise_does_not_start_clean_up() -> None:
    accs = [0.02, 0.1, 0.55, 0.2, 0.1, 0.6, 0.3, 0.6, 0.8, 0.95, 1.0]  # spikes at 200 and 500, then for real
    rows = [_row(100 * i, 1.0, a) for i, a in enumerate(accs)]
    b = phase_boundaries(rows)
    assert (b.circuit_formation, b.cleanup, b.generalised) == (0, 700, 1000)
    assert b.phase_at(500) == "circuit formation"  # in hindsight: the spike at 500 fell back at 600
    assert phase_at(rows, 500) == "clean-up"  # seen at 500 with the rows so far, it might still hold
