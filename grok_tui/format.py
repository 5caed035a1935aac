"""How a run's numbers and words read, in `grok ls` and in grok-tui alike: one formatter for both.

Plain strings only (no rich, no Textual), so the CLI imports it without the TUI's cost and the two can
never disagree. A value that is missing, not a number or not finite reads as ``-``: a damaged file shows
as unknown, never as a wrong number. Colours are semantic *tones* (``success``, ``error``, ...): the TUI
resolves them against its theme, the CLI through ``RICH_STYLES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .runs import NO_SCHEDULER, RunSummary, finite

DASH = "-"
#: Where `grok ls` cuts an error shown next to the state (the TUI shows the whole line elsewhere).
ERROR_WIDTH = 40
#: Where a state's reason (``stopped (time limit)``) or Slurm's word on a queued job is cut.
REASON_WIDTH = 30

#: The tone of each state: done green, running cyan, failed red, stopped yellow, queued and new dim.
STATE_TONES = {
    "running": "primary",
    "queued": "muted",
    "done": "success",
    "failed": "error",
    "stopped": "warning",
    "new": "muted",
}
#: Tones as rich styles, for the CLI's tables (`grok ls` has always used these colours).
RICH_STYLES = {"primary": "cyan", "success": "green", "error": "red", "warning": "yellow", "muted": "dim"}


def acc(v: Any) -> str:
    """Accuracy to three decimals (0.990 is the memorised/grokked threshold)."""
    f = finite(v)
    return DASH if f is None else f"{f:.3f}"


def step(v: Any) -> str:
    """A step count (memorised at, grokked at): a whole number or ``-``."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    f = finite(v)
    return DASH if f is None or not f.is_integer() else str(int(f))


def progress(done: Any, total: Any) -> str:
    """``step/total``, as in the table's step column."""
    return f"{step(done)}/{step(total)}"


def frac(v: Any) -> str:
    f = finite(v)
    return DASH if f is None else f"{f:g}"


def num(v: Any) -> str:
    """A measure: 4 significant digits, exponent for tiny or huge values."""
    f = finite(v)
    if f is None:
        return DASH
    a = abs(f)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{f:.3e}"
    return f"{f:.4g}"


def text(v: Any) -> str:
    """A plain value of the spec (p, seed, device): as written, or ``-`` when absent."""
    return DASH if v is None else str(v)


def task_label(task: Any) -> str:
    """The task of a spec: an expression, or a mixture's expressions joined with `` | ``."""
    if isinstance(task, (list, tuple)):
        return " | ".join(map(str, task))
    return "?" if task is None else str(task)


def init_from_label(init_from: Any) -> str:
    """``embed+block ← add/seed0 @last, frozen embed``: what a transfer run starts from ("" for none)."""
    if not isinstance(init_from, dict):
        return ""
    load, freeze = init_from.get("load") or [], init_from.get("freeze") or []
    out = []
    if load:
        out.append(f"{'+'.join(map(str, load))} ← {init_from.get('run')} @{init_from.get('step')}")
    if freeze:
        out.append(f"frozen {'+'.join(map(str, freeze))}")
    return ", ".join(out)


def model_label(model: Any) -> str:
    """The model kind of a spec (``transformer``, ``mlp``, ``rfm``); ``?`` when the spec says none."""
    kind = model.get("kind") if isinstance(model, dict) else None
    return kind if isinstance(kind, str) and kind else "?"


def short_error(error: Any, width: int = ERROR_WIDTH) -> str:
    """An error's first line, cut to ``width`` characters with an ellipsis when it is longer."""
    if not error:
        return ""
    line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass(frozen=True)
class StateLabel:
    """A run's state as shown: the words and their tone (a key of ``RICH_STYLES``)."""

    text: str
    tone: str


def state_label(s: RunSummary) -> StateLabel:
    """The state column: the state and its tone; an unknown state reads as it is, dimmed; a queued run
    that no scheduler will start says so, as a warning. A run that stopped or failed for a reason other
    than the user's stop says why (``stopped (time limit)``), and a queued Slurm run what Slurm says of
    its job (``queued (Slurm: PENDING, Resources)``): it waits in Slurm's queue, not for a scheduler."""
    state = str(s.state)
    tone = STATE_TONES.get(state, "muted")
    if s.orphaned:
        return StateLabel(NO_SCHEDULER, "warning")
    if state == "queued" and s.slurm is not None:
        said = ", ".join(w for w in (s.slurm.state, s.slurm.reason) if w)
        return StateLabel(f"queued (Slurm{': ' + short_error(said, REASON_WIDTH) if said else ''})", tone)
    if state in ("stopped", "failed") and s.reason:
        return StateLabel(f"{state} ({short_error(s.reason, REASON_WIDTH)})", tone)
    return StateLabel(state, tone)


def job_label(s: RunSummary) -> str:
    """``123_4 on node1``: a Slurm run's job and the node its worker runs on ("" for a local run)."""
    if s.slurm is None:
        return ""
    return (s.slurm.job or "?") + (f" on {s.host}" if s.host else "")


def slurm_lines(s: RunSummary) -> list[str]:
    """What `grok show` prints of a Slurm run under its table (nothing for a local run): job, node,
    Slurm's state as last seen and the output file `grok logs` prints."""
    j = s.slurm
    if j is None:
        return []
    array = f" (array {j.array}, task {j.task})" if j.array and j.task is not None else ""
    said = ", ".join(w for w in (j.state, j.reason) if w)
    return [
        f"backend: slurm, job {j.job or '?'}{array}" + (f", pack {j.pack}" if j.pack else ""),
        f"node: {s.host or '- (not started)'}",
        f"Slurm state: {said or '- (not seen yet)'}",
        f"output: {j.output or '- (status.json names none)'}",
    ]


def cells(s: RunSummary) -> dict[str, str]:
    """Every column `grok ls` and the TUI's table can show, as text, keyed by column name."""
    spec = s.spec if isinstance(s.spec, dict) else {}
    return {
        "run": s.run_id,
        "state": state_label(s).text,
        "step": progress(s.step, s.total_steps),
        "train_acc": acc(s.train_acc),
        "test_acc": acc(s.test_acc),
        "memorised_at": step(s.memorised_at),
        "grokked_at": step(s.grokked_at),
        "task": task_label(spec.get("task")),
        "model": model_label(spec.get("model")),
        "p": text(spec.get("p")),
        "train_frac": frac(spec.get("train_frac")),
        "seed": text(spec.get("seed")),
        "device": text(s.device),
        "error": short_error(s.error),
        "job": (s.job or "?") if s.slurm else "",
        "node": s.host or "",
    }


def gini_convention(constant: bool | None) -> str:
    """How a Gini of Fourier norms was taken (``analysis.gini_constant``): the papers leave it open."""
    if constant is None:
        return "constant component: unrecorded"
    return "constant component in" if constant else "constant component out"


def ablation_lines(ab: dict[str, Any], clusters: dict[str, Any] | None = None) -> list[str]:
    """The Fourier ablations (``CheckpointView.to_json()['ablation']``) and the neuron clusters as the
    lines `grok inspect` prints and the TUI inspector shows. Every loss names its pairs."""
    split, base = ab["restricted_split"], finite(ab.get("train_loss"))

    def times(v: Any) -> str:
        f = finite(v)
        if f is None or base is None or base <= 0:
            return ""
        return f"  ({f / base:.3g} × train loss)"

    keys = " ".join(map(str, ab["key_freqs"])) or "none"
    lines = [
        f"as trained: loss {num(ab['loss'])} ({split} pairs), {num(ab['train_loss'])} (train pairs)",
        f"only key frequencies {keys} kept (restricted): loss {num(ab['restricted_loss'])}"
        f"  acc {acc(ab['restricted_acc'])} ({split} pairs), {num(ab['restricted_train_loss'])} (train pairs)"
        f"{times(ab['restricted_train_loss'])}",
        f"key frequencies removed (excluded): loss {num(ab['excluded_loss'])}"
        f"  acc {acc(ab['excluded_acc'])} (train pairs)",
    ]
    one = "  ".join(f"{k}: {num(v)}" for k, v in ab["without_key"].items())
    if one:
        lines.append(f"one key frequency removed (train loss): {one}")
    worst = ab.get("worst_non_key")
    if worst:
        lines.append(
            f"most harmful non-key frequency removed: k = {worst['freq']}: train loss {num(worst['loss'])}"
            f"{times(worst['loss'])}"
        )
    if clusters:
        parts = [
            f"{c['freq']}: {c['neurons']}"
            + (f" (share {acc(c['mean_share'])})" if c["mean_share"] is not None else "")
            for c in clusters["clusters"]
        ]
        explained = finite(clusters.get("explained_share"))
        lines.append(
            f"neuron clusters (variance share > {clusters['threshold']:g}): {', '.join(parts) or 'none'};"
            f" unexplained {clusters['unexplained']} of {clusters['neurons']}"
            + (f" ({explained:.1%} explained)" if explained is not None else "")
        )
    return lines


def excess_decades(per_freq: list[Any], train_loss: Any) -> list[float]:
    """log10(train loss with k removed / the train loss) per frequency: how much removing k alone hurts,
    on a scale where a key frequency (orders of magnitude) and a non-key one that matters (subtraction)
    both show. Never below 0: a removal that helps a little, round-off or an unknown value reads as 0."""
    import math

    base = finite(train_loss)
    out = []
    for v in per_freq:
        f = finite(v)
        ok = f is not None and base is not None and base > 0 and f > 0
        d = math.log10(f / base) if ok else 0.0  # type: ignore[operator]
        out.append(d if d > 1e-9 else 0.0)  # round-off is no effect
    return out
