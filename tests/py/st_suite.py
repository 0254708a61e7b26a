#!/usr/bin/env python3
"""The reference for `make eval-suite`: sentence-transformers' encode() on CPU
torch, cosines in double precision with the tie-exact formula, scipy's Spearman.

  st_suite.py MODEL SUITE_DIR [--max-seq-length N] [--threads N] [--batch-size N]

SUITE_DIR is laid out as the official archives unpack (as ../shared/data/
sts-suite): STS12-en-test/ ... STS16-en-test/, SICK.txt.  Read here directly,
not from what fetch-data.sh prepares, so that its preparation is checked too:
a year's subsets are the PREFIX.input.NAME.txt files at the top level with a
PREFIX.gs.NAME.txt beside them; a pair's sentences are the input's first two
tab-separated fields; pairs whose gold line is empty are left out.  SICK-R is
SICK.txt's TEST rows (sentence_A, sentence_B, relatedness_score), when it has
any.  Prints one JSON object: set name -> {"n", "spearman"} for every subset
("STS12/MSRpar"), every year (all its scored pairs pooled: "STS12") and
"SICK-R-test".

Each distinct token sequence is encoded once (see below).  The cosine is
a.b / sqrt(max(|a|^2, 1e-24) * max(|b|^2, 1e-24)) of the float32 embeddings in
float64, so that two identical embeddings give exactly 1, as spearman(1)
computes it; the ranks are scipy.stats.spearmanr's (ties averaged).
"""
import argparse
import json
import os
import re
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def year_subsets(year_dir):
    """[(name, [(s1, s2)], [gold])] of the scored pairs of each subset."""
    out = []
    for fname in sorted(os.listdir(year_dir)):
        m = re.fullmatch(r"(STS[0-9]*)\.input\.(.+)\.txt", fname)
        if not m:
            continue
        gs = os.path.join(year_dir, "%s.gs.%s.txt" % (m.group(1), m.group(2)))
        if not os.path.isfile(gs):
            continue
        inputs = read_lines(os.path.join(year_dir, fname))
        golds = read_lines(gs)
        assert len(inputs) == len(golds), fname
        pairs, gold = [], []
        for line, g in zip(inputs, golds):
            if g.strip() == "":
                continue
            fields = line.split("\t")
            pairs.append((fields[0], fields[1]))
            gold.append(float(g))
        out.append((m.group(2), pairs, gold))
    return out


def sick_test(path):
    pairs, gold = [], []
    lines = read_lines(path)
    for line in lines[1:]:
        f = line.split("\t")
        if f[11] == "TEST":
            pairs.append((f[1], f[2]))
            gold.append(float(f[4]))
    return pairs, gold


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("suite")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    import numpy as np
    import torch
    from scipy import stats
    from sentence_transformers import SentenceTransformer

    if args.threads:
        torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = args.max_seq_length

    # Every set's pairs first, then one encode() of each distinct token
    # sequence: sentence-transformers' vector for a sentence moves in the last
    # bits with the batch it lands in (padding changes the shapes of the matrix
    # products), so two sentences that tokenise alike (65 of the 459 pairs of
    # STS 2012's SMTeuroparl) would get cosines of 1 +- 1e-7 ranked by that
    # noise; encoding each token sequence once gives them exactly 1, as a
    # deterministic encoder (embed) does.
    sets = []  # (name, pairs, gold) in the order of the output
    for year in ("STS12", "STS13", "STS14", "STS15", "STS16"):
        d = os.path.join(args.suite, year + "-en-test")
        if not os.path.isdir(d):
            continue
        subsets = year_subsets(d)
        for name, pairs, gold in subsets:
            sets.append(("%s/%s" % (year, name), pairs, gold))
        sets.append((year, [p for _, ps, _ in subsets for p in ps], [g for _, _, gs in subsets for g in gs]))
    sick = os.path.join(args.suite, "SICK.txt")
    if os.path.isfile(sick):
        pairs, gold = sick_test(sick)
        if pairs:
            sets.append(("SICK-R-test", pairs, gold))

    sentences = sorted({s for _, pairs, _ in sets for p in pairs for s in p})
    key = {}
    for start in range(0, len(sentences), 1024):
        batch = sentences[start:start + 1024]
        ids = model.tokenize(batch)["input_ids"].tolist()
        for s, seq in zip(batch, ids):
            key[s] = tuple(t for t in seq if t != model.tokenizer.pad_token_id)
    distinct = sorted(set(key.values()))
    first = {}
    for s in sentences:
        first.setdefault(key[s], s)
    print("%d sentences, %d distinct token sequences" % (len(sentences), len(distinct)), file=sys.stderr)
    emb = model.encode([first[k] for k in distinct], batch_size=args.batch_size, convert_to_numpy=True)
    vec = {k: e.astype(np.float64) for k, e in zip(distinct, emb)}

    def cosines(pairs):
        a = np.stack([vec[key[p[0]]] for p in pairs])
        b = np.stack([vec[key[p[1]]] for p in pairs])
        dot = (a * b).sum(axis=1)
        aa = np.maximum((a * a).sum(axis=1), 1e-24)
        bb = np.maximum((b * b).sum(axis=1), 1e-24)
        return dot / np.sqrt(aa * bb)

    result = {}
    for name, pairs, gold in sets:
        result[name] = {"n": len(gold), "spearman": float(stats.spearmanr(cosines(pairs), gold)[0])}
        print("%s: n %d spearman %.9f" % (name, len(gold), result[name]["spearman"]), file=sys.stderr)
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
