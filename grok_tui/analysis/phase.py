"""The phase a run is in (Nanda et al. 2023 §5: memorisation → circuit formation → clean-up).

The rule, on the metrics rows (every boundary is an evaluation step; a row lacking the accuracy it needs is
skipped). Its boundaries are the verdict columns of `grok ls` (memorised at, grokked at), computed by the
same function (``runs.first_step_at``); only a run whose test accuracy reached 0.99 before its train
accuracy did, which the phases cannot describe, is generalised from the first such evaluation after it
memorised:

1. **memorisation** until *memorised at*: the first evaluation with train accuracy ≥ 0.99
   (``runs.FIT_THRESHOLD``, the column of `grok ls`).
2. **circuit formation** from there until clean-up begins: the train set is fitted and the Fourier circuit
   grows inside the weights (restricted loss falls, excluded loss rises, the weight norm shrinks) while the
   test behaviour is still that of a memoriser.
3. **clean-up** from the evaluation after which test accuracy stays at or above halfway from its value at
   memorised at to 1 (0.5 for a run that memorises at chance, as Nanda's 30 % split does; higher where a
   large train fraction already generalises part of the test set while it memorises), up to *grokked at*
   (or the last evaluation, for a run that has not grokked yet): the memorising components are being removed
   and test accuracy climbs. Halfway from the plateau, and "stays", keep a plateau's level and its noise
   from starting clean-up early: a spike that falls back is not a beginning. A run that jumps straight past
   0.99 starts clean-up at that step.
4. **generalised** from *grokked at*: the first evaluation with test accuracy ≥ 0.99 (the column of `grok
   ls`), at or after memorised at.

Why accuracies rather than the Fourier measures: they exist for every model and task (the restricted loss
needs a task with Fourier structure and a checkpoint), and the Fourier measures move smoothly, so a threshold
on them would be arbitrary; they are shown beside the phase instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..runs import FIT_THRESHOLD, first_step_at, fraction, is_step

#: Clean-up holds test accuracy at least this far from its value at memorised at to 1.
CLEANUP_FRACTION = 0.5


@dataclass
class PhaseBoundaries:
    """Steps at which each phase after memorisation began (None: not reached)."""

    circuit_formation: int | None = None
    cleanup: int | None = None
    generalised: int | None = None

    def phase_at(self, step: int) -> str:
        if self.generalised is not None and step >= self.generalised:
            return "generalised"
        if self.cleanup is not None and step >= self.cleanup:
            return "clean-up"
        if self.circuit_formation is not None and step >= self.circuit_formation:
            return "circuit formation"
        return "memorisation"


def phase_boundaries(rows: list[dict[str, Any]]) -> PhaseBoundaries:
    """The boundaries of the rule above, from metrics rows in any order."""
    rows = sorted((r for r in rows if is_step(r.get("step"))), key=lambda r: r["step"])
    memorised = first_step_at(rows, "train_acc", FIT_THRESHOLD)
    if memorised is None:
        return PhaseBoundaries()
    after = [r for r in rows if r["step"] >= memorised]
    grokked = first_step_at(after, "test_acc", FIT_THRESHOLD)
    window = [r for r in after if grokked is None or r["step"] <= grokked]
    start = next((a for r in after if (a := fraction(r.get("test_acc"))) is not None), 0.0)
    bar = min(start + CLEANUP_FRACTION * (1.0 - start), FIT_THRESHOLD)  # grokked always qualifies
    cleanup = None
    for r in window:  # the last time test accuracy rose past the bar and then held
        acc = fraction(r.get("test_acc"))
        if acc is None:
            continue
        if acc < bar:
            cleanup = None
        elif cleanup is None:
            cleanup = r["step"]
    return PhaseBoundaries(memorised, cleanup, grokked)


def phase_at(rows: list[dict[str, Any]], step: int | None = None) -> str:
    """The phase at ``step`` (default: the last row's step) from the rows up to that step."""
    steps = [r["step"] for r in rows if is_step(r.get("step"))]
    if step is None:
        step = max(steps, default=0)
    return phase_boundaries([r for r in rows if is_step(r.get("step")) and r["step"] <= step]).phase_at(step)
