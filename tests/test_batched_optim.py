"""A pack's optimizer and gradient filters equal the solo ones run by run (training.batched).

The solo references are the real things: torch's foreach AdamW under the solo trainer's LambdaLR warm-up,
and ``gradients.EmaFilter``/``MaFilter``/``orthogonalise_``. AdamW and the Grokfast filters are compared
bit for bit (``torch.equal``): the batched update performs the same float operations on each run's slice,
so anything looser would hide a real difference. ⊥Grad's two dot products are float32 sums taken in a
different order than torch.dot's BLAS kernel, so it is compared to a few float32 ulps of the gradient.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grok_tui.training.batched import (
    BatchedAdamW,
    BatchedEma,
    BatchedMa,
    make_batched_filter,
    orthogonalise_batched_,
)
from grok_tui.training.gradients import EmaFilter, MaFilter, orthogonalise_

#: Solo parameter shapes: matrices, a bias, a 3-d tensor, a 0-d scalar, and 37 elements so the kernels'
#: vectorised loops end in a scalar tail, as the models' widths do not.
SHAPES: list[tuple[int, ...]] = [(5, 8), (8,), (3, 4, 6), (), (37,)]
STEPS = 30

FAST = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_grads(gen: torch.Generator, n: int) -> list[torch.Tensor]:
    return [torch.randn((n, *s), generator=gen) for s in SHAPES]


# ---------------------------------------------------------------------------------------------- AdamW
class Solo:
    """One run as the solo trainer drives it: torch AdamW (foreach) and LambdaLR, ``offset`` steps in."""

    def __init__(self, params: list[torch.Tensor], hp: dict[str, Any], offset: int = 0) -> None:
        self.params = [torch.nn.Parameter(p.detach().clone()) for p in params]
        self.opt = torch.optim.AdamW(
            self.params,
            lr=hp["lr"],
            betas=hp["betas"],
            eps=hp["eps"],
            weight_decay=hp["weight_decay"],
            foreach=True,
        )
        w = hp["warmup"]
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min((s + offset) / w, 1.0) if w else 1.0
        )

    def step(self, grads: list[torch.Tensor]) -> None:
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g.clone()
        self.opt.step()
        self.sched.step()

    def state(self) -> dict[int, dict[str, torch.Tensor]]:
        return {j: self.opt.state[p] for j, p in enumerate(self.params) if p in self.opt.state}


def pack_of(solos: list[Solo], hps: list[dict[str, Any]]) -> tuple[list[torch.Tensor], BatchedAdamW]:
    """A pack holding the solo runs' weights and optimizer states, as the packed worker resumes one."""
    stacked = [torch.stack([s.params[j].detach() for s in solos]).clone() for j in range(len(SHAPES))]
    opt = BatchedAdamW(stacked, **{k: [hp[k] for hp in hps] for k in hps[0]})
    for i, s in enumerate(solos):
        opt.load_member_state(i, s.state())
    return stacked, opt


def assert_same_run(stacked: list[torch.Tensor], opt: BatchedAdamW, i: int, solo: Solo) -> None:
    for j, p in enumerate(solo.params):
        assert torch.equal(stacked[j][i], p.detach()), f"run {i}, parameter {j}"
    assert opt.lr_now()[i] == solo.sched.get_last_lr()[0]


hyper = st.fixed_dictionaries(
    {
        "lr": st.floats(1e-4, 3e-2),
        "betas": st.tuples(st.floats(0.5, 0.95), st.floats(0.9, 0.999)),
        "eps": st.sampled_from([1e-8, 1e-6, 1e-25]),
        "weight_decay": st.one_of(st.just(0.0), st.floats(0.0, 2.0)),
        "warmup": st.integers(0, 12),
        "before": st.integers(0, 15),  # steps the run took solo before it joined the pack
    }
)


@FAST
@given(runs=st.lists(hyper, min_size=3, max_size=5), seed=st.integers(0, 2**31 - 1))
def test_batched_adamw_equals_torch_adamw_run_by_run(runs: list[dict[str, Any]], seed: int) -> None:
    runs[0].update(warmup=0, before=0)  # always one fresh run without warm-up ...
    runs[1].update(warmup=max(runs[1]["warmup"], 1))  # ... and one with warm-up
    gen = torch.Generator().manual_seed(seed)
    hps = [{k: v for k, v in r.items() if k != "before"} for r in runs]
    solos = []
    for hp, r in zip(hps, runs, strict=True):
        solo = Solo([torch.randn(s, generator=gen) for s in SHAPES], hp)
        for _ in range(r["before"]):
            solo.step([torch.randn(s, generator=gen) for s in SHAPES])
        solos.append(solo)
    stacked, opt = pack_of(solos, hps)
    assert opt.steps.tolist() == [r["before"] for r in runs]
    for _ in range(STEPS):
        grads = random_grads(gen, len(runs))
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        for i, solo in enumerate(solos):
            solo.step([g[i] for g in grads])
            assert_same_run(stacked, opt, i, solo)
    for i, solo in enumerate(solos):  # the moments too, in torch's own format
        mine, theirs = opt.member_state(i), solo.state()
        assert mine.keys() == theirs.keys()
        for j in mine:
            assert mine[j].keys() == theirs[j].keys()
            for key, t in theirs[j].items():
                assert mine[j][key].dtype == t.dtype and mine[j][key].device == t.device
                assert torch.equal(mine[j][key], t), (i, j, key)


def test_the_first_warm_up_step_has_lr_zero_but_counts() -> None:
    p = torch.ones(2, 3)
    opt = BatchedAdamW([p], [1e-2, 1e-2], [(0.9, 0.98)] * 2, [1e-8] * 2, [1.0, 1.0], [10, 0])
    assert opt.lr_now() == [0.0, 1e-2]
    p.grad = torch.ones(2, 3)
    opt.step()
    assert torch.equal(p[0], torch.ones(3)) and not torch.equal(p[1], torch.ones(3))
    assert opt.steps.tolist() == [1, 1] and opt.lr_now() == [1e-3, 1e-2]
    assert torch.equal(opt.member_state(0)[0]["exp_avg"], torch.full((3,), 0.1))


def test_member_state_round_trips_through_a_solo_resume_state_and_back() -> None:
    """Run 1's state goes into a real torch AdamW, through ``state_dict``/``torch.save``/``load_state_dict``
    (a resume.pt), and back into a new pack: all three continue identically."""
    gen = torch.Generator().manual_seed(3)
    hps = [
        {"lr": 1e-3, "betas": (0.9, 0.98), "eps": 1e-8, "weight_decay": 1.0, "warmup": 10},
        {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.5, "warmup": 4},
        {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-25, "weight_decay": 0.0, "warmup": 0},
    ]
    stacked = [torch.randn((3, *s), generator=gen) for s in SHAPES]
    opt = BatchedAdamW(stacked, **{k: [hp[k] for hp in hps] for k in hps[0]})
    assert all(opt.member_state(i) == {} for i in range(3))  # no step yet: torch keeps no state either
    k = 7
    for _ in range(k):
        for p, g in zip(stacked, random_grads(gen, 3), strict=True):
            p.grad = g
        opt.step()

    writer = Solo([p[1] for p in stacked], hps[1])
    for j, p in enumerate(writer.params):
        writer.opt.state[p] = opt.member_state(1)[j]
    # A solo resume state also holds the group's current lr (the schedule writes it there), and
    # load_state_dict restores it over whatever the fresh schedule set: the writer must put it in.
    writer.opt.param_groups[0]["lr"] = opt.lr_now()[1]
    buf = io.BytesIO()
    torch.save(writer.opt.state_dict(), buf)
    buf.seek(0)
    solo = Solo([p[1] for p in stacked], hps[1], offset=k)
    solo.opt.load_state_dict(torch.load(buf, weights_only=True))
    assert solo.sched.get_last_lr()[0] == opt.lr_now()[1]

    again = [p.clone() for p in stacked]
    opt2 = BatchedAdamW(again, **{kk: [hp[kk] for hp in hps] for kk in hps[0]})
    for i in range(3):
        opt2.load_member_state(i, opt.member_state(i) if i != 1 else solo.state())
    for _ in range(10):
        grads = random_grads(gen, 3)
        for p, q, g in zip(stacked, again, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
        solo.step([g[1] for g in grads])
        assert_same_run(stacked, opt, 1, solo)
        assert all(torch.equal(p, q) for p, q in zip(stacked, again, strict=True))


def test_loading_the_empty_state_makes_a_run_fresh() -> None:
    gen = torch.Generator().manual_seed(4)
    hp = {"lr": 1e-3, "betas": (0.9, 0.98), "eps": 1e-8, "weight_decay": 1.0, "warmup": 3}
    stacked = [torch.randn((2, *s), generator=gen) for s in SHAPES]
    opt = BatchedAdamW(stacked, **{k: [hp[k]] * 2 for k in hp})
    for _ in range(5):
        for p, g in zip(stacked, random_grads(gen, 2), strict=True):
            p.grad = g
        opt.step()
    opt.load_member_state(0, {})
    assert opt.steps.tolist() == [0, 5] and opt.member_state(0) == {} and opt.lr_now()[0] == 0.0
    solo = Solo([p[0] for p in stacked], hp)
    for _ in range(6):
        grads = random_grads(gen, 2)
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        solo.step([g[0] for g in grads])
        assert_same_run(stacked, opt, 0, solo)


def _adamw_state(k: int = 4) -> tuple[BatchedAdamW, dict[int, dict[str, torch.Tensor]]]:
    stacked = [torch.zeros((2, *s)) for s in SHAPES]
    opt = BatchedAdamW(stacked, [1e-3] * 2, [(0.9, 0.98)] * 2, [1e-8] * 2, [1.0] * 2, [0] * 2)
    for _ in range(k):
        for p in stacked:
            p.grad = torch.ones_like(p)
        opt.step()
    return opt, opt.member_state(1)


def _misfits() -> list[tuple[str, Any]]:
    _, good = _adamw_state()
    n = len(SHAPES)

    def edit(j: int, **kv: Any) -> dict[int, dict[str, Any]]:
        return {i: ({**s, **kv} if i == j else s) for i, s in good.items()}

    return [
        ("not a table", [1, 2]),
        ("a parameter missing", {i: s for i, s in good.items() if i != 2}),
        ("a parameter too many", {**good, n: good[0]}),
        ("a string key", {**{i: s for i, s in good.items() if i}, "0": good[0]}),
        ("a moment missing", {**good, 1: {"step": good[1]["step"], "exp_avg": good[1]["exp_avg"]}}),
        ("a moment of the wrong shape", edit(0, exp_avg=torch.zeros(8, 5))),
        ("a moment that is no tensor", edit(0, exp_avg_sq=[0.0])),
        ("a fractional step", edit(0, step=torch.tensor(2.5))),
        ("a negative step", edit(0, step=torch.tensor(-1.0))),
        ("a NaN step", edit(0, step=torch.tensor(float("nan")))),
        ("steps that differ", edit(3, step=torch.tensor(9.0))),
        ("an entry that is no table", {**good, 0: "x"}),
    ]


@pytest.mark.parametrize(("what", "state"), _misfits(), ids=[w for w, _ in _misfits()])
def test_an_optimizer_state_that_does_not_fit_is_refused_and_leaves_the_run_as_it_was(
    what: str, state: Any
) -> None:
    opt, _ = _adamw_state(k=2)
    before = opt.member_state(0)
    with pytest.raises(ValueError, match="the resume state's optimizer"):
        opt.load_member_state(0, state)
    after = opt.member_state(0)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[j][k], before[j][k]) for j in before for k in before[j])


def test_per_run_lists_must_cover_the_pack() -> None:
    p = [torch.zeros(3, 2)]
    ok: dict[str, Any] = {
        "lr": [1e-3] * 3,
        "betas": [(0.9, 0.98)] * 3,
        "eps": [1e-8] * 3,
        "weight_decay": [1.0] * 3,
        "warmup": [0] * 3,
    }
    for key in ok:
        with pytest.raises(ValueError, match=rf"^{key}: 2 values for a pack of 3 runs$"):
            BatchedAdamW(p, **{**ok, key: ok[key][:2]})
    with pytest.raises(ValueError, match="same leading run dimension"):
        BatchedAdamW([torch.zeros(3, 2), torch.zeros(2, 2)], **ok)


# ---------------------------------------------------------------------------------------------- Grokfast
def _solo_filters(make: Any, n: int, before: list[int], gen: torch.Generator) -> tuple[list, list]:
    params = [[torch.zeros(s) for s in SHAPES] for _ in range(n)]
    filters = [make(i, params[i]) for i in range(n)]
    for i in range(n):
        for _ in range(before[i]):
            for p in params[i]:
                p.grad = torch.randn(p.shape, generator=gen)
            filters[i].apply()
    return params, filters


def _run_filters(batched: Any, stacked: list, solo_params: list, solo: list, gen: torch.Generator) -> None:
    """Same gradients into the pack's filter and each solo one: the filtered gradients are equal."""
    n = len(solo)
    for _ in range(12):
        grads = random_grads(gen, n)
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g.clone()
        batched.apply()
        for i in range(n):
            for p, g in zip(solo_params[i], grads, strict=True):
                p.grad = g[i].clone()
            solo[i].apply()
            for j, p in enumerate(solo_params[i]):
                assert torch.equal(stacked[j].grad[i], p.grad), (i, j)


def _same_state(mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert mine.keys() == theirs.keys()
    for key, t in theirs.items():
        if isinstance(t, list):
            assert len(mine[key]) == len(t) and all(
                torch.equal(a, b) for a, b in zip(mine[key], t, strict=True)
            )
        else:
            assert mine[key] == t, key


@FAST
@given(
    hp=st.lists(
        st.tuples(st.floats(0.5, 0.99), st.floats(0.0, 5.0), st.integers(0, 4)), min_size=3, max_size=4
    ),
    seed=st.integers(0, 2**31 - 1),
)
def test_batched_ema_equals_ema_filter_run_by_run(hp: list[tuple[float, float, int]], seed: int) -> None:
    hp[0] = (hp[0][0], hp[0][1], 0)  # one run not started yet
    gen = torch.Generator().manual_seed(seed)
    alpha, lamb, before = (list(x) for x in zip(*hp, strict=True))
    solo_params, solo = _solo_filters(lambda i, ps: EmaFilter(ps, alpha[i], lamb[i]), len(hp), before, gen)
    stacked = [torch.zeros((len(hp), *s)) for s in SHAPES]
    batched = BatchedEma(stacked, alpha, lamb)
    for i, f in enumerate(solo):
        batched.load_member_state(i, f.state_dict())
        _same_state(batched.member_state(i), f.state_dict())
    _run_filters(batched, stacked, solo_params, solo, gen)
    for i, f in enumerate(solo):
        _same_state(batched.member_state(i), f.state_dict())


@FAST
@given(
    window=st.integers(1, 5),
    hp=st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(0, 11)), min_size=3, max_size=4),
    seed=st.integers(0, 2**31 - 1),
)
def test_batched_ma_equals_ma_filter_run_by_run(window: int, hp: list[tuple[float, int]], seed: int) -> None:
    hp[0] = (hp[0][0], 0)  # one empty window
    gen = torch.Generator().manual_seed(seed)
    lamb, before = (list(x) for x in zip(*hp, strict=True))
    solo_params, solo = _solo_filters(lambda i, ps: MaFilter(ps, window, lamb[i]), len(hp), before, gen)
    stacked = [torch.zeros((len(hp), *s)) for s in SHAPES]
    batched = BatchedMa(stacked, window, lamb)
    for i, f in enumerate(solo):
        batched.load_member_state(i, f.state_dict())
        _same_state(batched.member_state(i), f.state_dict())
    _run_filters(batched, stacked, solo_params, solo, gen)
    for i, f in enumerate(solo):
        _same_state(batched.member_state(i), f.state_dict())


def _filter_misfits(kind: str) -> list[Any]:
    shapes_ok = [torch.zeros((3, *s)) if kind == "ma" else torch.zeros(s) for s in SHAPES]
    wrong = [*shapes_ok[:-1], torch.zeros(36 if kind == "ema" else (3, 36))]
    other = (
        {"kind": "ma", "ring": shapes_ok, "count": 0, "pos": 0}
        if kind == "ema"
        else {"kind": "ema", "h": None}
    )
    bad: list[Any] = [
        other,
        "ema",
        {"kind": "none"},
        {"kind": kind, **{("h" if kind == "ema" else "ring"): wrong}},
    ]
    if kind == "ema":
        bad += [{"kind": "ema", "h": shapes_ok[:-1]}, {"kind": "ema", "h": [t.double() for t in shapes_ok]}]
    else:
        base = {"kind": "ma", "ring": shapes_ok, "count": 1, "pos": 1}
        bad += [
            {**base, "count": 4},
            {**base, "pos": 3},
            {**base, "pos": -1},
            {**base, "ring": shapes_ok[:2]},
        ]
    return bad


@pytest.mark.parametrize("kind", ["ema", "ma"])
def test_a_filter_state_that_does_not_fit_is_refused_with_the_solo_filters_message(kind: str) -> None:
    solo_params = [torch.zeros(s) for s in SHAPES]
    stacked = [torch.zeros((2, *s)) for s in SHAPES]
    if kind == "ema":
        solo, batched = EmaFilter(solo_params, 0.9, 2.0), BatchedEma(stacked, [0.9, 0.9], [2.0, 2.0])
    else:
        solo, batched = MaFilter(solo_params, 3, 2.0), BatchedMa(stacked, 3, [2.0, 2.0])
    for p in stacked:
        p.grad = torch.ones_like(p)
    batched.apply()
    before = batched.member_state(1)
    for bad in _filter_misfits(kind):
        with pytest.raises(ValueError) as solo_err:
            solo.load_state_dict(bad)
        with pytest.raises(ValueError) as mine:
            batched.load_member_state(1, bad)
        assert str(mine.value) == str(solo_err.value)
        _same_state(batched.member_state(1), before)


def test_make_batched_filter_builds_one_kind_and_refuses_a_mixed_pack() -> None:
    params = [torch.zeros(2, 3)]
    assert make_batched_filter([None, {"kind": "none"}], params) is None
    ema = make_batched_filter(
        [{"kind": "ema", "alpha": 0.98, "lamb": 2.0}, {"kind": "ema", "alpha": 0.9, "lamb": 5.0}], params
    )
    assert (
        isinstance(ema, BatchedEma) and ema.alpha.tolist() == [0.98, 0.9] and ema.lamb.tolist() == [2.0, 5.0]
    )
    ma = make_batched_filter(
        [{"kind": "ma", "window": 4, "lamb": 1.0}, {"kind": "ma", "window": 4, "lamb": 3.0}], params
    )
    assert isinstance(ma, BatchedMa) and ma.window == 4 and ma.lamb.tolist() == [1.0, 3.0]
    ema_cfg, ma_cfg = {"kind": "ema", "alpha": 0.98, "lamb": 2.0}, {"kind": "ma", "window": 4, "lamb": 1.0}
    for cfgs in ([ema_cfg, None], [ema_cfg, ma_cfg], [{"kind": "none"}, ma_cfg]):
        with pytest.raises(ValueError, match="must share one Grokfast kind"):
            make_batched_filter(cfgs, params)
    with pytest.raises(ValueError, match=r"one Grokfast-MA window, these have \[4, 8\]"):
        make_batched_filter([ma_cfg, {**ma_cfg, "window": 8}], params)


# ---------------------------------------------------------------------------------------------- ⊥Grad
@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 5))
def test_orthogonalise_batched_equals_orthogonalise_run_by_run(seed: int, n: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    stacked = [torch.randn((n, *s), generator=gen) for s in SHAPES]
    grads = random_grads(gen, n)
    stacked[0][1] = 0.0  # a zero weight (TINY keeps 0/0 away) ...
    grads[0][2] = 0.0  # ... and a zero gradient
    for p, g in zip(stacked, grads, strict=True):
        p.grad = g.clone()
    orthogonalise_batched_(stacked)
    for i in range(n):
        solo = [torch.nn.Parameter(p[i].clone()) for p in stacked]
        for p, g in zip(solo, grads, strict=True):
            p.grad = g[i].clone()
        orthogonalise_(solo)
        for j, p in enumerate(solo):
            scale = float(grads[j][i].abs().max()) + 1e-30
            eps = torch.finfo(torch.float32).eps
            torch.testing.assert_close(stacked[j].grad[i], p.grad, rtol=0, atol=8 * eps * scale)


# ---------------------------------------------------------------------------------------------- capture
def _twin_packs(device: torch.device, gen: torch.Generator) -> tuple[list[Any], list[Any]]:
    """Two identical 3-run packs (weights, AdamW, both filters), their runs at different steps."""
    weights = [torch.randn((3, *s), generator=gen) for s in SHAPES]
    _, adamw_state = _adamw_state()
    ma_state = {
        "kind": "ma",
        "ring": [torch.randn((3, *s), generator=gen) for s in SHAPES],
        "count": 2,
        "pos": 2,
    }
    packs = []
    for _ in range(2):
        stacked = [w.to(device) for w in weights]
        for p in stacked:
            p.grad = torch.zeros_like(p)
        opt = BatchedAdamW(
            stacked, [1e-3, 3e-3, 1e-2], [(0.9, 0.98)] * 3, [1e-8] * 3, [1.0, 0.0, 0.5], [10, 0, 3]
        )
        opt.load_member_state(1, adamw_state)
        ema = BatchedEma(stacked, [0.98, 0.9, 0.5], [2.0, 5.0, 0.0])
        ma = BatchedMa(stacked, 3, [1.0, 2.0, 3.0])
        ma.load_member_state(1, ma_state)
        packs.append([stacked, ema, ma, opt])
    return packs[0], packs[1]


def _packed_step(pack: list[Any]) -> None:
    stacked, ema, ma, opt = pack
    ema.apply()
    ma.apply()
    orthogonalise_batched_(stacked)
    opt.step()


def _same_grads(packs: tuple[list[Any], list[Any]], gen: torch.Generator) -> None:
    for g, p, q in zip(random_grads(gen, 3), packs[0][0], packs[1][0], strict=True):
        p.grad.copy_(g)
        q.grad.copy_(g)


def test_the_packed_step_never_reads_a_tensor_value_on_the_host() -> None:
    """On the meta device a tensor has no values: any ``.item()``, ``.tolist()`` or Python branch on a
    tensor value would raise, and each is a host sync a CUDA graph cannot capture."""
    dev = torch.device("meta")
    stacked = [torch.empty((3, *s), device=dev) for s in SHAPES]
    for p in stacked:
        p.grad = torch.empty_like(p)
    opt = BatchedAdamW(stacked, [1e-3] * 3, [(0.9, 0.98)] * 3, [1e-8] * 3, [1.0] * 3, [10, 0, 3])
    pack = [stacked, BatchedEma(stacked, [0.9] * 3, [1.0] * 3), BatchedMa(stacked, 3, [1.0] * 3), opt]
    _packed_step(pack)
    _packed_step(pack)
    with pytest.raises(NotImplementedError):  # the check has teeth: reading a value does raise
        opt.lr_now()


def test_the_packed_step_traces_as_one_graph() -> None:
    """torch.compile(fullgraph=True) (the route to mode="reduce-overhead") refuses a graph break, such as
    a ``.tolist()`` or a Python branch on a tensor value; the traced step equals the eager one."""
    gen = torch.Generator().manual_seed(5)
    eager, traced = packs = _twin_packs(torch.device("cpu"), gen)
    step = torch.compile(lambda: _packed_step(traced), backend="eager", fullgraph=True)
    for _ in range(4):
        _same_grads(packs, gen)
        _packed_step(eager)
        step()
        assert all(torch.equal(p, q) for p, q in zip(eager[0], traced[0], strict=True))
    assert traced[3].steps.tolist() == [4, 8, 4]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_packed_step_replays_in_a_cuda_graph() -> None:
    """Captured once, replayed: each replay is one eager step (the packed worker's fast path)."""
    gen = torch.Generator().manual_seed(6)
    eager, graphed = packs = _twin_packs(torch.device("cuda"), gen)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up, as torch.cuda.graph asks: one step of both
        _same_grads(packs, gen)
        _packed_step(eager)
        _packed_step(graphed)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        _packed_step(graphed)  # captured, not run
    for _ in range(5):
        _same_grads(packs, gen)
        _packed_step(eager)
        graph.replay()
        torch.cuda.synchronize()
        assert all(torch.equal(p, q) for p, q in zip(eager[0], graphed[0], strict=True))
    assert graphed[3].steps.tolist() == [6, 10, 6]
