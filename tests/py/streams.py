#!/usr/bin/env python3
"""Tensor-stream helpers for the command-line tests (numpy only).

  streams.py fixture REFERENCE.safetensors TOKENS EXPECTED
      The anchor, positive and negative input_ids of a fixture as one token
      stream (rows = examples, columns = anchor/positive/negative, -1 padded
      where attention_mask is 0), and their reference embeddings as the
      matching (rows, 3, H) stream.
  streams.py anchor REFERENCE.safetensors MODE TOKENS EXPECTED
      The anchor input_ids as a one-column token stream, and the last
      hidden states pooled by MODE (mean, cls or max over the positions
      where attention_mask is 1) as the matching (rows, 1, H) stream.
  streams.py ragged VOCAB ROWS SEED TOKENS [LONGEST]
      ROWS rows of 2 columns with lengths from 1 to LONGEST (120) tokens
      (random ids below VOCAB), for order and batching tests.
  streams.py frames STREAM
      One line per frame: its shape, e.g. "1024 2 32".
  streams.py maxdiff A B
      The largest absolute difference of two streams, frames concatenated
      along rows (shapes must agree; exit 1 otherwise or on NaN).
"""
import sys

import numpy as np


def save_rows(path, rows, frames=1):
    """A token stream of rows (lists of C id lists), -1 padded, in frames."""
    T = max(len(s) for r in rows for s in r)
    a = np.full((len(rows), len(rows[0]), T), -1, dtype="<i4")
    for i, r in enumerate(rows):
        for c, s in enumerate(r):
            a[i, c, : len(s)] = s
    with open(path, "wb") as f:
        for part in np.array_split(a, frames):
            np.save(f, part)


def read_stream(path):
    frames = []
    with open(path, "rb") as f:
        while f.peek(1):
            frames.append(np.load(f))
    return frames


def fixture(ref_path, tokens_path, expected_path):
    from safetensors.numpy import load_file

    ref = load_file(ref_path)
    cols = ("anchor", "positive", "negative")
    T = max(ref[c + ".input_ids"].shape[1] for c in cols)
    B = ref["anchor.input_ids"].shape[0]
    ids = np.full((B, len(cols), T), -1, dtype="<i4")
    for j, c in enumerate(cols):
        x, mask = ref[c + ".input_ids"], ref[c + ".attention_mask"]
        ids[:, j, : x.shape[1]] = np.where(mask == 1, x, -1)
    with open(tokens_path, "wb") as f:
        np.save(f, ids)
    with open(expected_path, "wb") as f:
        np.save(f, np.stack([ref[c + ".embedding"] for c in cols], axis=1).astype("<f4"))


def anchor(ref_path, mode, tokens_path, expected_path):
    from safetensors.numpy import load_file

    ref = load_file(ref_path)
    ids, mask = ref["anchor.input_ids"], ref["anchor.attention_mask"]
    layers = max(int(k.rsplit(".", 1)[1]) for k in ref if k.startswith("anchor.hidden_states."))
    hidden = ref["anchor.hidden_states.%d" % layers].astype(np.float64)
    pooled = []
    for h, m in zip(hidden, mask):
        h = h[m == 1]
        pooled.append({"mean": h.mean(axis=0), "cls": h[0], "max": h.max(axis=0)}[mode])
    with open(tokens_path, "wb") as f:
        np.save(f, np.where(mask == 1, ids, -1).astype("<i4")[:, None, :])
    with open(expected_path, "wb") as f:
        np.save(f, np.array(pooled, dtype="<f4")[:, None, :])


def ragged(vocab, rows, seed, tokens_path, longest=120):
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, longest + 1, size=(rows, 2))
    lens[::7] = 1  # runs of very short and very long neighbours
    lens[3::7] = longest
    ids = np.full((rows, 2, longest), -1, dtype="<i4")
    for i in range(rows):
        for j in range(2):
            ids[i, j, : lens[i, j]] = rng.integers(0, vocab, size=lens[i, j])
    with open(tokens_path, "wb") as f:
        np.save(f, ids)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fixture":
        fixture(*args)
    elif cmd == "anchor":
        anchor(*args)
    elif cmd == "ragged":
        ragged(*map(int, args[:3]), args[3], *map(int, args[4:]))
    elif cmd == "frames":
        for a in read_stream(args[0]):
            print(" ".join(map(str, a.shape)))
    elif cmd == "maxdiff":
        a, b = (np.concatenate(read_stream(p)).astype(np.float64) for p in args)
        if a.shape != b.shape:
            sys.exit("shapes differ: %s and %s" % (a.shape, b.shape))
        d = np.abs(a - b).max() if a.size else 0.0
        if np.isnan(d):
            sys.exit("NaN in the streams")
        print("%.3g" % d)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
