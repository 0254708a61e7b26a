"""Helper of bench-tokenize.sh (needs numpy and Hugging Face tokenizers).

  bench_tokenize.py extract DATA_DIR          STS-B and NLI sentences, one a line
  bench_tokenize.py hf VOCAB TEXT             time tokenizers on TEXT: one line
                                              "tokens N wall S cpu S method M"
  bench_tokenize.py time IN OUT CMD...        run CMD (stdin IN, stdout OUT) 3
                                              times: "wall S cpu S" of the
                                              fastest (cpu: all its processes)
  bench_tokenize.py tokens STREAM             number of tokens in a token stream
  bench_tokenize.py same STREAM STREAM        whether two streams hold the same
                                              sequences in the same order
  bench_tokenize.py same-as-hf VOCAB TEXT STREAM
                                              whether STREAM holds tokenizers'
                                              ids for each line of TEXT
"""
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def extract(data):
    """Every sentence of STS-B train and dev and of the NLI files, in order."""
    out = sys.stdout
    for split in ("train", "dev"):
        with open(os.path.join(data, "stsbenchmark", "sts-%s.csv" % split), encoding="utf-8") as f:
            for line in f:
                for s in line.rstrip("\n").split("\t")[5:7]:
                    out.write(s + "\n")
    for name in ("snli_1.0_devtest.jsonl", "mnli_matched_sample.jsonl",
                 "mnli_mismatched_sample.jsonl"):
        with open(os.path.join(data, "nli", name), encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                for key in ("sentence1", "sentence2", "premise", "hypothesis"):
                    if key in o:
                        out.write(" ".join(o[key].split()) + "\n")


def lines_of(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return f.read().split("\n")[:-1]


def tokenizer(vocab):
    from tokenizers import BertWordPieceTokenizer
    return BertWordPieceTokenizer(vocab, lowercase=True)


def hf(vocab, path):
    """Best of 3 wall-clock times of encode_batch and of encode_batch_fast
    (no offsets) over all lines; reports the faster method."""
    tok = tokenizer(vocab)
    texts = lines_of(path)
    best = None
    for method in [m for m in ("encode_batch", "encode_batch_fast") if hasattr(tok._tokenizer, m)]:
        encode = getattr(tok._tokenizer, method)
        for _ in range(3):
            w0, c0 = time.perf_counter(), time.process_time()
            enc = encode(texts)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            tokens = sum(len(e.ids) for e in enc)
            del enc
            if best is None or wall < best[1]:
                best = (tokens, wall, cpu, method)
    print("tokens %d wall %.6f cpu %.6f method %s" % best)


def time_command(inp, out, cmd):
    """Best of 3 runs of cmd by wall-clock time, with the CPU time (user +
    system) of all the processes of that run."""
    best = None
    for _ in range(3):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(inp, "rb") as i, open(out, "wb") as o:
            w0 = time.perf_counter()
            subprocess.run(cmd, stdin=i, stdout=o, check=True)
            wall = time.perf_counter() - w0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if best is None or wall < best[0]:
            best = (wall, cpu)
    print("wall %.6f cpu %.6f" % best)


def sequences(path):
    """All sequences of a token stream: (lengths, ids without padding)."""
    lens, ids = [], []
    with open(path, "rb") as f:
        while f.peek(1):
            a = np.load(f)
            seq = a.reshape(-1, a.shape[2])
            keep = seq >= 0
            lens.append(keep.sum(axis=1))
            ids.append(seq[keep])
    if not lens:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    return np.concatenate(lens), np.concatenate(ids)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "extract":
        extract(args[0])
    elif cmd == "hf":
        hf(args[0], args[1])
    elif cmd == "time":
        time_command(args[0], args[1], args[2:])
    elif cmd == "tokens":
        print(int(sequences(args[0])[0].sum()))
    elif cmd == "same":
        a, b = sequences(args[0]), sequences(args[1])
        same = np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        print("yes" if same else "NO", len(a[0]), "sequences", len(a[1]), "tokens")
    elif cmd == "same-as-hf":
        enc = tokenizer(args[0]).encode_batch(lines_of(args[1]))
        lens, ids = sequences(args[2])
        want = np.fromiter((i for e in enc for i in e.ids), np.int32)
        same = np.array_equal(lens, [len(e.ids) for e in enc]) and np.array_equal(ids, want)
        print("yes" if same else "NO", len(enc), "sequences", len(want), "tokens")
    else:
        sys.exit("bench_tokenize.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
