"""Run-steps per second of packed training, and the wall time for a pack of seeds to grok.

    python bench/bench_pack.py                                  # nanda-add, packs of 1..64, this device
    python bench/bench_pack.py --device cuda --grok nanda-add   # and 8 seeds of nanda-add to grokking
    python bench/bench_pack.py --sizes 1 8 --grok quick --grok-seeds 8

Throughput: one training step of a pack of N seeds (forward, backward, Grokfast/⊥Grad if the preset has
them, the per-run AdamW) timed as the packed worker runs it, against the solo trainer's step; run-steps/s
= steps/s × N. Evaluation is left out (it runs every ``eval_every`` steps, off the hot path).

Grokking: ``--grok EXPERIMENT`` trains ``--grok-seeds`` seeds of the preset as one pack through the real
packed trainer (run directories in a temporary folder, every evaluation and checkpoint written) until
every member's test accuracy reached 99 %, and prints the wall time, from the first step to the
evaluation that saw the last member grok. Output: one JSON object per line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from timing import timed

from grok_tui import runs
from grok_tui.config import load_config
from grok_tui.launch.local import prepare_run
from grok_tui.training import packed
from grok_tui.training.common import pick_device
from grok_tui.training.neural import Trainer

ROOT = Path(__file__).resolve().parent.parent


def seeds_of(spec: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [
        {**spec, "seed": s, "init_seed": s, "split_seed": s, "name": f"seed{s}", "device": "auto"}
        for s in range(n)
    ]


def members(specs: list[dict[str, Any]], root: Path, device: torch.device) -> list[packed.Member]:
    out = []
    for spec in specs:
        run = prepare_run(spec, root)[0]
        t = Trainer(spec, run.path, device)
        t.watch = None
        out.append(packed.Member(t, run.path))
    return out


def evaluation_ms(pack: packed.Pack, sync: Callable[[], None]) -> dict[str, float]:
    """One evaluation of every member (the batched forward pass, then each member's own measures and
    rows), without and with a checkpoint (its analysis and files): what a pack pauses for every
    ``eval_every`` and ``checkpoint_every`` steps."""
    out = {}
    for name, checkpoint in (("eval_ms", False), ("checkpoint_ms", True)):
        t0 = time.perf_counter()
        logits, acts = pack.outputs(list(range(len(pack.members))))
        for i, m in enumerate(pack.members):
            pack.sync_weights(i)
            with contextlib.redirect_stdout(io.StringIO()):
                m.trainer.evaluate(checkpoint=checkpoint, outputs=(logits[i], acts[i]))
        sync()
        out[name] = round((time.perf_counter() - t0) * 1e3, 1)
    return out


def throughput(
    spec: dict[str, Any], sizes: list[int], device: torch.device, min_s: float, evals: bool
) -> None:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        solo = members(seeds_of(spec, 1), Path(tmp) / "solo", device)[0].trainer
        solo_s = timed(solo.train_step, sync, min_s)
        print(
            json.dumps({"solo": True, "step_ms": round(solo_s * 1e3, 3), "run_steps_s": round(1 / solo_s, 1)})
        )
        for n in sizes:
            try:
                pack = packed.Pack(members(seeds_of(spec, n), Path(tmp) / f"pack{n}", device), device)
                pack.watch = None  # as solo's: no loss watch in the timed step (a copy per step when on)
                step_s = timed(pack.step, sync, min_s)
            except torch.OutOfMemoryError as e:
                print(json.dumps({"runs": n, "error": str(e).splitlines()[0]}), flush=True)
                break
            row = {
                "runs": n,
                "step_ms": round(step_s * 1e3, 3),
                "run_steps_s": round(n / step_s, 1),
                "vs_solo": round(solo_s * n / step_s, 2),
            }
            if evals:
                row.update(evaluation_ms(pack, sync))
            print(json.dumps(row), flush=True)
            del pack
            if device.type == "cuda":
                torch.cuda.empty_cache()


def time_to_grok(spec: dict[str, Any], n: int, device: torch.device) -> None:
    """Train n seeds as one pack until every member's test accuracy reached 99 % (or the preset's steps)."""
    with tempfile.TemporaryDirectory() as tmp:
        specs = seeds_of(spec, n)
        dirs = [prepare_run(s, Path(tmp))[0].path for s in specs]
        start = time.perf_counter()
        grokked: dict[Path, float] = {}
        looked = [0.0]

        def stop_all() -> bool:
            # a member's metrics.jsonl says when it grokked: every evaluation is written as it happens
            if time.perf_counter() - looked[0] < 0.5:
                return False
            looked[0] = time.perf_counter()
            for d in dirs:
                if d not in grokked and runs.RunDir(d).summary().grokked_at is not None:
                    grokked[d] = time.perf_counter() - start
            return len(grokked) == n

        with contextlib.redirect_stdout(io.StringIO()):
            packed.run(specs, dirs, device, stop_all, lambda d: False, lambda d, s, e: None)
        steps = [runs.RunDir(d).summary().grokked_at for d in dirs]
        print(
            json.dumps(
                {
                    "grok": spec["experiment"],
                    "seeds": n,
                    "all_grokked": len(grokked) == n,
                    # until the evaluation that saw the last member grok; None when some never did
                    "wall_s": round(max(grokked.values()), 1) if len(grokked) == n else None,
                    "trained_s": round(time.perf_counter() - start, 1),
                    "grokked_at_steps": steps,
                }
            ),
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="nanda-add", help="preset for the throughput table")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--min-s", type=float, default=2.0, help="timed seconds per measurement")
    ap.add_argument(
        "--grok", metavar="EXPERIMENT", help="also time a pack of seeds of this preset to grokking"
    )
    ap.add_argument("--grok-seeds", type=int, default=8)
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument(
        "--evals", action="store_true", help="also time one evaluation and one checkpoint of a pack"
    )
    args = ap.parse_args()

    device = pick_device(args.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # as the trainers do
    presets = load_config(ROOT / "experiments.toml").experiments
    print(
        json.dumps(
            {
                "device": str(device)
                + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "experiment": args.experiment,
            }
        ),
        flush=True,
    )
    if not args.no_throughput:
        throughput(presets[args.experiment][0], args.sizes, device, args.min_s, args.evals)
    if args.grok:
        time_to_grok(presets[args.grok][0], args.grok_seeds, device)


if __name__ == "__main__":
    main()
