"""Time the live analysis entry points on p = 113 shapes (Nanda's model, random weights).

    python bench/bench_analysis.py [--p 113] [--task add] [--repeat 200] [--blas-threads 1]

Prints ms per call of eval_measures (every evaluation) and checkpoint_measures (every checkpoint),
and the final pass's per-checkpoint cost without the forward pass. Random weights and activations
cost the same as trained ones: every measure is a fixed amount of dense linear algebra.
numpy's OpenBLAS runs with --blas-threads threads (1, as the worker should; 0 = leave as is): on a
busy machine its default thread count makes these small products 10-30x slower.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from grok_tui.analysis import live
from grok_tui.analysis.progress import progress_measures
from grok_tui.analysis.structure import detect_structure
from grok_tui.analysis.synthetic import transformer_arrays
from grok_tui.tasks import Task, build_dataset
from grok_tui.training.common import limit_blas_threads


def _time(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm caches (Fourier basis, task structure)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=113)
    ap.add_argument("--task", default="add")
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-mlp", type=int, default=512)
    ap.add_argument("--blas-threads", type=int, default=1)
    args = ap.parse_args()
    if args.blas_threads:
        prev = limit_blas_threads(args.blas_threads)
        print(f"numpy OpenBLAS threads: {prev} → {args.blas_threads}" if prev else "numpy BLAS: not OpenBLAS")
    p, d, m = args.p, args.d_model, args.d_mlp
    rng = np.random.default_rng(0)
    vocab = p + 1
    # nanda-add-shaped weights carrying a grokked model's handful of key frequencies
    arrays = transformer_arrays(p, [1, 2, 3, 4, 5], rng, d_model=d, d_mlp=m, noise=0.1)
    spec = {"p": p, "task": args.task, "tasks": [args.task], "analysis": {}}
    data = build_dataset([Task.parse(args.task, p)], p, 0.3, 0, "nanda")
    logits = rng.standard_normal((len(data.labels), vocab))
    acts = np.maximum(rng.standard_normal((len(data.labels), m)), 0).astype(np.float32)
    grid = detect_structure(data.a, data.b, data.labels, p)

    med, best = _time(lambda: live.eval_measures(arrays, spec), args.repeat)
    print(f"eval_measures        p={p} {args.task}: {med:8.2f} ms/call (median), {best:.2f} min")
    n = max(3, args.repeat // 20)
    med, best = _time(lambda: live.checkpoint_measures(arrays, logits, acts, data, spec), n)
    print(f"checkpoint_measures  p={p} {args.task}: {med:8.1f} ms/call (median), {best:.1f} min")
    if grid is not None:
        med, best = _time(
            lambda: progress_measures(logits, data.labels, data.is_train, grid, [14, 35, 41, 42, 52]),
            n,
        )
        print(f"final pass per ckpt  p={p} {args.task}: {med:8.1f} ms (+ the model's forward pass)")


if __name__ == "__main__":
    main()
