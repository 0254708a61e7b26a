#!/usr/bin/env python3
"""Compare two training runs that must compute the same training up to
rounding (a cached run and an uncached one, N ranks and one process, ours and
a reference).

usage: compare_runs.py LOG_A LOG_B MODEL_A MODEL_B [LOSS_REL [WEIGHT_REL]]

LOG_*: JSON Lines with a "step" and a "loss" in every step object (other
lines are ignored); MODEL_*: safetensors files with the same tensor names.
The runs must have the same steps (at least one), losses within LOSS_REL
(default 1e-6) relative, and every weight within WEIGHT_REL (default 1e-5)
x max(0.01, the largest magnitude in B's tensor): the floor keeps tensors
whose gradient is zero in exact arithmetic (attention key biases) from
turning rounding noise into a failure.  Prints the largest errors; exit 1
when a tolerance is exceeded."""
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def steps(path):
    out = [json.loads(line) for line in open(path)]
    return [(s["step"], s["loss"]) for s in out if "loss" in s and "step" in s]


def main():
    log_a, log_b, model_a, model_b = sys.argv[1:5]
    loss_rel = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-6
    weight_rel = float(sys.argv[6]) if len(sys.argv) > 6 else 1e-5
    a, b = steps(log_a), steps(log_b)
    if not a or [s for s, _ in a] != [s for s, _ in b]:
        sys.exit(f"steps differ or none: {[s for s, _ in a]} and {[s for s, _ in b]}")
    la = np.array([x for _, x in a], dtype=np.float64)
    lb = np.array([x for _, x in b], dtype=np.float64)
    rel = np.abs(la - lb) / np.abs(lb)
    print(f"{len(a)} steps; loss: max relative difference {rel.max():.3g} (step {a[rel.argmax()][0]})")
    failed = rel.max() > loss_rel

    wa, wb = load_file(model_a), load_file(model_b)
    if sorted(wa) != sorted(wb):
        sys.exit(f"tensors differ: {sorted(set(wa) ^ set(wb))}")
    worst, where = 0.0, ""
    for name in wb:
        ref = wb[name].astype(np.float64)
        bound = weight_rel * max(0.01, float(np.abs(ref).max()))
        err = float(np.abs(wa[name].astype(np.float64) - ref).max()) / bound
        if err > worst:
            worst, where = err, name
    print(f"weights: largest difference {worst:.3g} of its bound ({where})")
    failed |= worst > 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
