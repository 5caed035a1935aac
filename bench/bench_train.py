"""Training throughput of the `nanda-add` preset on the device at hand.

    python bench/bench_train.py                 # steps/s per seed, evaluation share at the preset's cadence
    python bench/bench_train.py --grok          # also train until test accuracy >= 0.99 and report the time

Also the share of step time the live analysis takes (issue 3), inside the evaluation share.
Targets on a 2-core CPU (issue 2): >= 10 steps/s per seed, evaluation <= 3% of wall time, and grokking
(test acc >= 0.99, near step 9,000 as in the paper) in <= 15 minutes. The measured loop is the worker's
own (`grok_tui.training.neural.Trainer`), live analysis included.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from grok_tui.analysis import live
from grok_tui.config import load_config
from grok_tui.training.common import pick_device
from grok_tui.training.neural import Trainer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="nanda-add")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=300, help="timed training steps")
    ap.add_argument("--grok", action="store_true", help="train until test acc >= 0.99")
    args = ap.parse_args()

    spec = load_config(ROOT / "experiments.toml").experiments[args.experiment][0]
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(spec, Path(tmp), device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        for _ in range(10):  # warm-up (allocator, kernels)
            tr.train_step()
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            tr.train_step()
        sync()
        step_s = (time.perf_counter() - t0) / args.steps

        def timed(fn, n: int) -> float:
            sync()
            t = time.perf_counter()
            for _ in range(n):
                fn()
            sync()
            return (time.perf_counter() - t) / n

        eval_s = timed(lambda: tr.evaluate(checkpoint=False), 5)
        ckpt_s = timed(lambda: tr.evaluate(checkpoint=True), 3)
        # the live analysis alone (numpy, in the worker): per evaluation and per checkpoint
        arrays = tr.model.export_arrays()
        with torch.no_grad():
            logits, acts = tr.model(tr.inputs, return_acts=True)
        logits_np, acts_np = logits.double().cpu().numpy(), acts.float().cpu().numpy()
        live_eval_s = timed(lambda: live.eval_measures(arrays, spec), 10)
        live_ckpt_s = timed(lambda: live.checkpoint_measures(arrays, logits_np, acts_np, tr.data, spec), 3)
        ev, ck = spec["eval_every"], spec["checkpoint_every"]
        # per checkpoint period: ck steps, ck/ev evaluations of which one is a checkpoint evaluation
        period = ck * step_s + (ck // ev - 1) * eval_s + ckpt_s
        eval_share = ((ck // ev - 1) * eval_s + ckpt_s) / period
        result = {
            "experiment": args.experiment,
            "device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
            "threads": torch.get_num_threads(),
            "steps_per_s": round(1 / step_s, 2),
            "eval_ms": round(eval_s * 1e3, 1),
            "checkpoint_eval_ms": round(ckpt_s * 1e3, 1),
            "eval_share_pct": round(100 * eval_share, 2),
            "live_analysis_ms": [round(live_eval_s * 1e3, 2), round(live_ckpt_s * 1e3, 1)],
            "live_analysis_share_pct": round(100 * (ck // ev * live_eval_s + live_ckpt_s) / (ck * step_s), 2),
        }
        print(json.dumps(result))
        if args.grok:
            tr = Trainer(spec, Path(tmp) / "grok", device)
            t0 = time.perf_counter()
            grokked = None
            while tr.step < spec["steps"] and grokked is None:
                tr.train_step()
                if tr.step % ev == 0:
                    tr.evaluate(checkpoint=tr.step % ck == 0)
                    row = json.loads((Path(tmp) / "grok" / "metrics.jsonl").read_text().splitlines()[-1])
                    if row["test_acc"] >= 0.99:
                        grokked = tr.step
            wall = time.perf_counter() - t0
            result = {"grokked_at": grokked, "wall_s": round(wall, 1), "wall_min": round(wall / 60, 2)}
            print(json.dumps(result))


if __name__ == "__main__":
    main()
