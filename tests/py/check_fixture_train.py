#!/usr/bin/env python3
"""Compare an mnr-train run on a fixture's three training batches with the
fixture's reference (tests/cli/mnr-train.bats).

usage: check_fixture_train.py REFERENCE.safetensors LOG.jsonl MODEL.safetensors

The log's loss, grad_norm and lr of steps 1..3 must equal train.losses,
train.grad_norms and train.lrs within 1e-5 relative (lr 0 exactly), and every
weight in MODEL.safetensors the fixture's after.<name> within 3e-5 absolute.
Prints the largest errors; exit 1 when a tolerance is exceeded."""
import json
import sys

import numpy as np
from safetensors.numpy import load_file

ref = load_file(sys.argv[1])
steps = [json.loads(line) for line in open(sys.argv[2]) if '"loss"' in line]
model = load_file(sys.argv[3])
failed = False

if [s["step"] for s in steps] != [1, 2, 3]:
    sys.exit(f"log steps {[s['step'] for s in steps]}, expected 1, 2, 3")
for field, key in (("loss", "train.losses"), ("grad_norm", "train.grad_norms"), ("lr", "train.lrs")):
    got = np.array([s[field] for s in steps], dtype=np.float64)
    want = ref[key].astype(np.float64)
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
    rel[want == 0] = np.abs(got[want == 0])  # lr 0: must be 0
    print(f"{field}: max relative error {rel.max():.3g}")
    if rel.max() > 1e-5:
        print(f"  got {got.tolist()}, want {want.tolist()}")
        failed = True

names = [k[len("after."):] for k in ref if k.startswith("after.")]
if sorted(names) != sorted(model):
    sys.exit(f"tensors differ: {sorted(set(names) ^ set(model))}")
worst, where = 0.0, ""
for n in names:
    err = float(np.abs(model[n].astype(np.float64) - ref["after." + n]).max())
    if err > worst:
        worst, where = err, n
print(f"weights: max absolute error {worst:.3g} ({where})")
if worst > 3e-5:
    failed = True
sys.exit(1 if failed else 0)
