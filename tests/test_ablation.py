"""Fourier ablations (Nanda et al. 2023 §5.2, Furuta et al. 2024 Table A.4) on logits and neurons whose
Fourier content is built by hand, then through the checkpoint view and `grok inspect` (text and JSON),
stored by the worker's function or recomputed from weights, and with damaged analysis arrays."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grok_tui import checkpoints
from grok_tui.analysis import forward as fwd
from grok_tui.analysis import live
from grok_tui.analysis.ablation import fourier_ablation, neuron_clusters
from grok_tui.analysis.fourier import sum_directions
from grok_tui.analysis.keyfreq import neuron_rule
from grok_tui.analysis.progress import grid_logits, progress_measures, restricted_logits
from grok_tui.analysis.structure import detect_structure
from grok_tui.analysis.synthetic import fourier_logits, neuron_acts, transformer_arrays
from grok_tui.cli.inspecting import inspect
from grok_tui.config import load_config
from grok_tui.recorder import Recorder, write_json_atomic
from grok_tui.runs import SPEC
from grok_tui.tasks import Task, build_dataset

P = 23
KEYS = [2, 5, 9]


def grid_of(task: str, p: int = P, frac: float = 0.4):
    data = build_dataset([Task.parse(task, p)], p, frac, 0, "nanda")
    return data, detect_structure(data.a, data.b, data.labels, p)


@settings(max_examples=25, deadline=None)
@given(
    task=st.sampled_from(["add", "sub", "mul", "div"]),
    p=st.sampled_from([13, 17, 23]),
    data=st.data(),
)
def test_ablation_of_logits_with_known_frequencies(task: str, p: int, data) -> None:
    """Logits Σ_K cos(w_k(a ± b − c)): keeping K keeps them whole, removing one k ∈ K raises the train
    loss, removing a k ∉ K leaves it as it is, removing all of K leaves chance."""
    d, grid = grid_of(task, p)
    half = grid.n // 2
    keys = sorted(data.draw(st.sets(st.integers(1, half), min_size=1, max_size=min(3, half - 1))))
    assume(any(math.gcd(k, grid.n) == 1 for k in keys))  # else the built model cannot tell classes apart
    L = fourier_logits(d.a, d.b, p, keys, grid.sign, grid.basis)
    ab = fourier_ablation(L, d.labels, d.is_train, grid, keys)
    assert ab.per_freq.shape == (half,) and ab.key_freqs == keys
    G = grid_logits(L, grid)
    np.testing.assert_allclose(restricted_logits(G, sum_directions(grid.n, keys, grid.sign)), G, atol=1e-9)
    assert ab.restricted_loss == pytest.approx(ab.loss, abs=1e-9)  # (a lone k may tie classes: no acc)
    assert ab.restricted_train_loss == pytest.approx(ab.train_loss, abs=1e-9)
    assert ab.excluded_loss == pytest.approx(math.log(p), abs=1e-9)
    m = progress_measures(L, d.labels, d.is_train, grid, keys)  # the progress measures' own numbers
    assert (ab.restricted_loss, ab.excluded_loss) == (m["restricted_loss"], m["excluded_loss"])
    for k, v in enumerate(ab.per_freq, 1):
        if k in keys:
            assert v > (1 + 1e-3) * ab.train_loss, (k, v)  # raised (by little at k = n/2 or a crowded K)
        else:
            assert v == pytest.approx(ab.train_loss, rel=1e-9), (k, v)
    assert set(ab.without_key()) == set(keys)


def test_a_non_key_frequency_that_matters_shows_as_furuta_finds_for_subtraction() -> None:
    """The model leans on a frequency (7) the key set leaves out: the restricted loss sits well above
    the train loss, and removing 7 alone raises the loss more than any other non-key removal, which
    change nothing (the pattern of Furuta et al.'s Table A.4 for subtraction)."""
    d, grid = grid_of("sub")
    L = fourier_logits(d.a, d.b, P, KEYS, -1, scale=1.0) + fourier_logits(d.a, d.b, P, [7], -1, scale=20.0)
    ab = fourier_ablation(L, d.labels, d.is_train, grid, KEYS)
    assert ab.restricted_loss > 3 * ab.train_loss
    assert ab.worst_non_key()[0] == 7 and ab.per_freq[6] > 3 * ab.train_loss
    others = [k for k in range(1, 12) if k not in (*KEYS, 7)]
    assert all(ab.per_freq[k - 1] == pytest.approx(ab.train_loss, rel=1e-9) for k in others)


def test_neuron_clusters_count_what_was_built() -> None:
    d, grid = grid_of("add")
    rng = np.random.default_rng(0)
    acts, truth = neuron_acts(d.a, d.b, P, KEYS, rng, per_freq=6, n_noise=3, n_dead=2)
    kf = neuron_rule(acts[grid.rows], grid.n)
    cl = neuron_clusters(kf.neuron_freq, kf.neuron_frac, 0.85)
    assert [(c.freq, c.neurons) for c in cl.clusters] == [(k, 6) for k in KEYS]
    assert cl.unexplained == 5 and cl.neurons == len(truth) and cl.explained_share == pytest.approx(18 / 23)
    assert all(c.mean_share > 0.99 and c.min_share > 0.99 for c in cl.clusters)
    assert neuron_clusters(kf.neuron_freq, None, 0.85).clusters[0].mean_share is None  # an older file


# --------------------------------------------------------------------------- through the view

TOML = """
[experiments.{name}]
task = "{task}"
p = 23
train_frac = 0.4
steps = 100
model = {{ kind = "transformer", d_model = 32, heads = 4, d_mlp = 64 }}
"""


def make_run(root: Path, task: str = "sub", *, stored: bool = True, known: bool = True) -> Path:
    """A run with one checkpoint. ``known``: its analysis is the worker's function on logits with known
    Fourier content (KEYS); else on the numpy forward pass of its weights. ``stored=False``: weights
    only (an older run), so the view recomputes."""
    root.mkdir(parents=True, exist_ok=True)
    toml = root / "e.toml"
    toml.write_text(TOML.format(name="abl", task=task))
    spec = load_config(toml).experiments["abl"][0]
    run = root / "runs" / "abl" / "seed0"
    write_json_atomic(run / SPEC, spec)
    data = build_dataset([Task.parse(task, P)], P, 0.4, spec["split_seed"], "nanda")
    grid = live.dataset_grid(data, spec)
    rng = np.random.default_rng(1)
    arrays = transformer_arrays(P, KEYS, rng, basis=grid.basis if grid else "standard")
    if known:
        logits = fourier_logits(data.a, data.b, P, KEYS, grid.sign, grid.basis)
        acts, _ = neuron_acts(data.a, data.b, P, KEYS, rng, basis=grid.basis)
    else:
        logits, acts = fwd.forward(arrays, spec["model"], data)
    if stored:
        scalars, out = live.checkpoint_measures(arrays, logits, acts, data, spec)
        arrays = {**arrays, **{f"analysis/{k}": v for k, v in out.items()}}
    else:
        scalars = {}
    Recorder(run).checkpoint(100, arrays, scalars)
    return run


@pytest.mark.parametrize("task", ["sub", "mul"])
def test_grok_inspect_shows_the_stored_ablations(tmp_path: Path, task: str, capsys) -> None:
    run = make_run(tmp_path, task)
    assert inspect(run, None, True) == 0
    info = json.loads(capsys.readouterr().out)
    ab = info["ablation"]
    assert ab["source"] == "stored" and ab["key_freqs"] == KEYS and ab["restricted_split"] == "all"
    assert ab["structure"] == ("a − b" if task == "sub" else "log a + log b (g = 5)")
    assert ab["restricted_acc"] == 1.0 and ab["excluded_loss"] == pytest.approx(math.log(P), abs=1e-6)
    assert len(ab["excluded_loss_per_freq"]) == 11 and set(ab["without_key"]) == {"2", "5", "9"}
    assert all(v > 2 * ab["train_loss"] for v in ab["without_key"].values())
    assert ab["worst_non_key"]["loss"] == pytest.approx(ab["train_loss"], rel=1e-9)
    cl = info["neuron_clusters"]
    assert [(c["freq"], c["neurons"]) for c in cl["clusters"]] == [(k, 8) for k in KEYS]
    assert cl["unexplained"] == 6 and cl["threshold"] == 0.85 and info["gini_constant"] is False
    assert inspect(run, None, False) == 0
    out = capsys.readouterr().out
    assert "Fourier ablations (stored; logits over the c = " in out
    assert "only key frequencies 2 5 9 kept (restricted): loss" in out and "(all pairs)" in out
    assert "key frequencies removed (excluded): loss 3.135  acc" in out
    assert "one key frequency removed (train loss): 2: " in out
    assert "neuron clusters (variance share > 0.85): 2: 8 (share 1.000), 5: 8" in out
    assert "unexplained 6 of 30 (80.0% explained)" in out
    assert "(constant component out)" in out and "log10(train loss with k removed / train loss)" in out


def test_stored_and_recomputed_ablations_agree(tmp_path: Path, capsys) -> None:
    """The worker's stored ablation and the one the view recomputes from the weights alone (the numpy
    forward pass) are the same numbers, each saying where it came from."""
    stored = checkpoints.run_view(make_run(tmp_path / "a", known=False), 100)
    fresh = checkpoints.run_view(make_run(tmp_path / "b", known=False, stored=False), 100)
    assert stored.ablation_source == "stored" and fresh.ablation_source == "recomputed"
    assert fresh.key_freqs == stored.key_freqs and fresh.ablation.key_freqs == stored.key_freqs
    np.testing.assert_allclose(fresh.ablation.per_freq, stored.ablation.per_freq, rtol=1e-6)
    for k in ("loss", "train_loss", "restricted_loss", "excluded_loss"):
        assert getattr(fresh.ablation, k) == pytest.approx(getattr(stored.ablation, k), rel=1e-6), k


def rewrite(run: Path, **arrays) -> None:
    """Replace (or, with None, drop) analysis arrays of the run's checkpoint, keeping the rest."""
    path = run / "checkpoints" / "step_0000100.npz"
    with np.load(path) as z:
        kept = {k: z[k] for k in z.files}
    for k, v in arrays.items():
        kept.pop(f"analysis/{k}", None)
        if v is not None:
            kept[f"analysis/{k}"] = v
    np.savez(path, **kept)


def test_a_damaged_ablation_array_is_recomputed_and_named(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path, known=False)
    want = checkpoints.run_view(run, 100).ablation.per_freq
    rewrite(run, excluded_loss_all_freqs=np.zeros(4))
    assert inspect(run, None, True) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ablation"]["source"] == "recomputed"
    np.testing.assert_allclose(info["ablation"]["excluded_loss_per_freq"], want, rtol=1e-6)
    (note,) = [n for n in info["notes"] if "excluded_loss_all_freqs" in n]
    assert "step_0000100.npz: array 'analysis/excluded_loss_all_freqs' is float64 (4,), not float (11,)" in (
        note
    )


def test_missing_ablation_arrays_with_no_way_to_recompute_say_so_in_one_line(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path)
    rewrite(run, ablation_loss=None)
    spec = json.loads((run / SPEC).read_text())
    del spec["train_frac"]  # the dataset cannot be rebuilt: nothing to recompute from
    write_json_atomic(run / SPEC, spec)
    assert inspect(run, None, False) == 0
    out, err = capsys.readouterr()
    assert "Fourier ablations: Fourier ablations not recomputed (spec.json has no 'train_frac')" in out
    assert err == "" and "Traceback" not in out


def test_no_fourier_grid_and_mixtures_say_why(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path, "a*a + b", known=False)
    assert inspect(run, None, True) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ablation"] is None
    assert info["ablation_note"] == (
        "c = a*a + b is not ±a ± b (nor a^±1·b^±1 in the discrete-log basis):"
        " no Fourier grid, no Fourier ablations"
    )
    mix = tmp_path / "mix" / "seed0"
    write_json_atomic(mix / SPEC, {"p": P, "task": ["add", "sub"], "tasks": ["add", "sub"]})
    Recorder(mix).checkpoint(10, transformer_arrays(P, KEYS, np.random.default_rng(2), extra_tokens=3), {})
    assert inspect(mix, None, False) == 0
    assert "Fourier ablations: a mixture of tasks has no single Fourier grid" in capsys.readouterr().out


async def test_the_inspector_shows_the_ablations_on_a(tmp_path: Path) -> None:
    """`a` swaps the spectra and heatmap for the ablation bars (key frequencies marked) and numbers, all
    of it on 80×24; the numbers are the view's, the ones `grok inspect` prints; `a` again swaps back."""
    from tui_helpers import static_text

    from grok_tui import format as fmt
    from grok_tui.tui.app import GrokApp

    make_run(tmp_path)
    app = GrokApp(None, tmp_path / "runs", palette="truecolor")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.settle()
        await pilot.pause()
        app.open_run("abl/seed0")
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        bars = screen.query_one("#bars-ablation")
        assert not bars.display and screen.query_one("#bars-embed").display
        await pilot.press("a")
        await pilot.pause()
        assert bars.display and not screen.query_one("#bars-embed").display
        assert not screen.query_one("#insp-heat").display
        view = screen.view
        assert view.ablation_source == "stored" and bars.key_freqs == KEYS
        assert list(bars.values) == fmt.excess_decades(list(view.ablation.per_freq), view.ablation.train_loss)
        assert all(bars.values[k - 1] > 0.3 for k in KEYS) and bars.values[0] == 0.0  # 1 is no key
        axis = "".join(seg.text for seg in bars._frame[-1])
        assert axis.split() == ["1", "2", "5", "9", "10"]  # the key frequencies labelled
        text = static_text(screen.query_one("#insp-ablation")).replace("\n", " ")
        assert "Fourier ablations (stored; logits over the c = a − b grid)" in text
        assert "only key frequencies 2 5 9 kept (restricted)" in text and "unexplained 6 of 30" in text
        regions = [screen.query_one(w).region for w in ("#insp-head", "#bars-ablation", "#insp-ablation")]
        assert all(r.height >= 1 and r.bottom <= 23 for r in regions) and regions[1].height >= 4
        measures = static_text(screen.query_one("#insp-measures"))
        assert "Gini W_E −const" in measures
        await pilot.press("a")
        await pilot.pause()
        assert not bars.display and screen.query_one("#bars-embed").display
