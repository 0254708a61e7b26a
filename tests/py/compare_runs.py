"""compare_runs.py LOG_A MODEL_A LOG_B MODEL_B [RANKS_B]

Two mnr-train runs that must be the same training (one process against N
ranks, or a resumed run against a straight one): the same steps, per-step
losses within 1e-6 relative, and every weight of model.safetensors within
1e-5 x max(0.01, the largest magnitude in its tensor).  With RANKS_B, every
step of LOG_B must say "ranks": RANKS_B as its last key.  Prints the largest
differences; exits 1 on any failure.
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def steps(path):
    lines = [json.loads(l) for l in open(path)]
    return [l for l in lines if "loss" in l]


def main():
    log_a, model_a, log_b, model_b = sys.argv[1:5]
    ranks = int(sys.argv[5]) if len(sys.argv) > 5 else None
    a, b = steps(log_a), steps(log_b)
    bad = 0
    if [s["step"] for s in a] != [s["step"] for s in b] or not a:
        print(f"steps differ: {[s['step'] for s in a]} vs {[s['step'] for s in b]}")
        return 1
    worst = max(abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-30) for x, y in zip(a, b))
    print(f"{len(a)} steps, largest relative loss difference {worst:.3g}")
    bad += worst > 1e-6
    if ranks is not None:
        for s in b:
            if list(s)[-1] != "ranks" or s["ranks"] != ranks:
                print(f"step {s['step']}: not \"ranks\": {ranks} as the last key: {s}")
                bad += 1
    wa, wb = load_file(f"{model_a}/model.safetensors"), load_file(f"{model_b}/model.safetensors")
    if wa.keys() != wb.keys():
        print("the models have different tensors")
        return 1
    worst_name, worst_ratio = None, 0.0
    for name, x in wa.items():
        tol = 1e-5 * max(0.01, float(np.abs(x).max()))
        ratio = float(np.abs(x.astype(np.float64) - wb[name]).max()) / tol
        if ratio > worst_ratio:
            worst_name, worst_ratio = name, ratio
    print(f"{len(wa)} tensors, largest difference {worst_ratio:.3g} of the tolerance ({worst_name})")
    bad += worst_ratio > 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
