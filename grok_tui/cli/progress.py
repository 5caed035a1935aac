"""`grok show`'s progress panels: the measures of Nanda, Furuta and Mallinar et al. over steps, and the
phase line (numpy-free: the rows of metrics.jsonl and progress.jsonl as they are)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import format as fmt
from ..analysis.live import gini_constant
from ..analysis.phase import phase_boundaries
from ..runs import RunDir, finite
from .inspecting import read_progress


def progress_series(run_dir: Path | str) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Panels of progress-measure curves: title → {label: (steps, values)}.

    Restricted/excluded loss and accuracy come from progress.jsonl (final key frequencies, as in the
    paper) when the run has finished, else from the per-checkpoint values in metrics.jsonl.
    """
    run = RunDir(run_dir)
    rows = run.metrics()
    prog = read_progress(run_dir)

    def series(src: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
        pts = [(r["step"], v) for r in src if (v := finite(r.get(key))) is not None]
        return [float(s) for s, _ in pts], [v for _, v in pts]

    src, tag = (prog, " (final key freqs)") if prog else (rows, "")
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    loss = {k: series(rows, k) for k in ("train_loss", "test_loss")}
    loss.update({k: series(src, k) for k in ("restricted_loss", "excluded_loss")})
    panels["restricted / excluded loss" + tag] = loss
    panels["restricted / excluded accuracy" + tag] = {
        k: series(src, k) for k in ("restricted_acc", "excluded_acc")
    }
    panels["sum of squared weights"] = {"weight_norm": series(rows, "weight_norm")}
    # Prieto et al. 2025: train pairs whose float32 softmax is exactly 1 (their loss and gradient are 0)
    panels["softmax collapse (share of train pairs)"] = {"softmax_collapse": series(rows, "softmax_collapse")}
    gini = fmt.gini_convention(gini_constant(run.spec()))
    panels[f"Gini of Fourier norms ({gini})"] = {k: series(rows, k) for k in ("gini_embed", "gini_logit")}
    panels["FFD / FCR"] = {k: series(rows, k) for k in ("ffd_embed", "fcr_embed", "ffd_logit", "fcr_logit")}
    panels["feature matrix (RFM / MLP)"] = {
        k: series(rows, k) for k in ("circulant_deviation", "agop_alignment", "nfa_corr")
    }
    return {
        title: {k: v for k, v in ps.items() if v[0]}
        for title, ps in panels.items()
        if any(v[0] for k, v in ps.items() if k not in ("train_loss", "test_loss"))
    }


def phase_line(run_dir: Path | str) -> str:
    """One line: the phase now and the steps where each phase began (see analysis.phase)."""
    rows = RunDir(run_dir).metrics()
    b = phase_boundaries(rows)
    now = b.phase_at(max((r["step"] for r in rows), default=0))
    return (
        f"phase: {now}   (circuit formation from {fmt.step(b.circuit_formation)},"
        f" clean-up from {fmt.step(b.cleanup)}, generalised from {fmt.step(b.generalised)})"
    )


def progress_curves(run_dir: Path | str, width: int = 100) -> list[str]:
    """The phase line, then rendered plotext panels of :func:`progress_series` (log-y for losses);
    [] when the run has no progress measures yet."""
    from ..plots import curves

    panels = progress_series(run_dir)
    if not panels:
        return []
    # the phase rule reads a network's memorise/clean-up story; an RFM interpolates from iteration 0
    rfm = fmt.model_label(RunDir(run_dir).spec().get("model")) == "rfm"
    out = [] if rfm else [phase_line(run_dir)]
    for title, series in panels.items():
        out.append(curves(series, title, width=width, log_y="loss" in title))
    return out
