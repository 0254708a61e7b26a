#!/usr/bin/env python3
"""Token streams from a fixture's reference.safetensors, for mnr-train's tests.

    fixture_stream.py REFERENCE OUT.npy train       train.batch0..2 (anchor, positive),
                                                     one frame per batch
    fixture_stream.py REFERENCE OUT.npy pairs       (anchor, positive)
    fixture_stream.py REFERENCE OUT.npy triplets    (anchor, positive, negative)

input_ids + attention_mask (right padding with 0) become -1 padded frames of
shape (rows, columns, length)."""
import sys

import numpy as np
from safetensors.numpy import load_file


def frame(ref, prefix, columns):
    seqs = []
    for c in columns:
        ids = ref[f"{prefix}{c}.input_ids"].astype(np.int32)
        mask = ref[f"{prefix}{c}.attention_mask"]
        seqs.append(np.where(mask == 1, ids, -1))
    T = max(s.shape[1] for s in seqs)
    out = np.full((seqs[0].shape[0], len(columns), T), -1, dtype="<i4")
    for c, s in enumerate(seqs):
        out[:, c, : s.shape[1]] = s
    return out


def main():
    ref = load_file(sys.argv[1])
    what = sys.argv[3]
    with open(sys.argv[2], "wb") as f:
        if what == "train":
            for b in range(3):
                np.save(f, frame(ref, f"train.batch{b}.", ["anchor", "positive"]))
        elif what == "pairs":
            np.save(f, frame(ref, "", ["anchor", "positive"]))
        elif what == "triplets":
            np.save(f, frame(ref, "", ["anchor", "positive", "negative"]))
        else:
            sys.exit(f"unknown stream '{what}'")


main()
