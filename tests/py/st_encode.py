#!/usr/bin/env python3
"""The reference for embed: sentence-transformers' own encode() on CPU torch.

  st_encode.py MODEL STS_CSV [--stream OUT] [--threads N] [--batch-size N]

Encodes sentence1 and sentence2 (tab-separated fields 6 and 7, as
`cut -f6,7` takes them) of every line of an STS benchmark file with the
model directory MODEL, offline, and prints the Spearman and Pearson
correlation (scipy) of each pair's cosine with the gold score (field 5):

  spearman R pearson R n N

--stream OUT also writes the embeddings as one (pairs, 2, H) float32 frame.
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def read_sts(path):
    gold, pairs = [], []
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            gold.append(float(fields[4]))
            pairs.append((fields[5], fields[6]))
    return gold, pairs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("sts")
    ap.add_argument("--stream")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    import numpy as np
    import torch
    from scipy import stats
    from sentence_transformers import SentenceTransformer

    if args.threads:
        torch.set_num_threads(args.threads)
    gold, pairs = read_sts(args.sts)
    model = SentenceTransformer(args.model, device="cpu")
    emb = [model.encode([p[j] for p in pairs], batch_size=args.batch_size,
                        convert_to_numpy=True) for j in (0, 1)]
    emb = np.stack(emb, axis=1).astype(np.float32)
    if args.stream:
        with open(args.stream, "wb") as f:
            np.save(f, emb)
    e = emb.astype(np.float64)
    norms = np.maximum(np.linalg.norm(e, axis=2), 1e-12)
    cos = (e[:, 0] * e[:, 1]).sum(axis=1) / (norms[:, 0] * norms[:, 1])
    print("spearman %.9f pearson %.9f n %d" % (stats.spearmanr(cos, gold)[0],
                                               stats.pearsonr(cos, gold)[0], len(gold)))


if __name__ == "__main__":
    sys.exit(main())
