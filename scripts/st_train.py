#!/usr/bin/env python3
"""sentence-transformers' side of pipelines/real-run.sh: the same MNR
fine-tuning as mnr-train, on the same batches, with sentence-transformers'
own model, loss and the optimiser and schedule its trainer builds.

  st_train.py shuffle SEED
      The lines of standard input in an order fixed by SEED (Python's
      random.Random(SEED).shuffle), on standard output.
  st_train.py batches [--batch-size N] STREAM
      The batches of sentence-transformers' NoDuplicatesBatchSampler over the
      rows of the token stream STREAM taken in input order (its torch.randperm
      replaced by the identity, as `mnr-train --no-shuffle` takes them), a
      text being a token sequence as for mnr-train: one line of row numbers
      per batch.
  st_train.py train --model DIR --pairs TSV --batches FILE --log FILE [--out DIR]
                    [--init-from-config CONFIG.json] [--lr X] [--warmup X]
                    [--weight-decay X] [--max-grad-norm X] [--seed N]
                    [--max-length N] [--threads N] [--max-steps N] [--mini-batch N]
      Fine-tune the sentence-transformers model DIR with
      MultipleNegativesRankingLoss (with --mini-batch N > 0,
      CachedMultipleNegativesRankingLoss with mini_batch_size N) on the
      (anchor, positive) lines of TSV, one
      optimizer step per line of FILE (its rows), and save it to --out (written
      under a temporary name, then renamed; not saved without --out).  FILE
      also fixes the schedule's length, as the trainer takes it from
      len(dataloader).  With --init-from-config, DIR's encoder is replaced by
      random weights of that BERT configuration (DIR's tokenizer and pooling
      stay): for speed tests.  The log is JSON Lines like mnr-train's: step,
      loss, lr, grad_norm, examples_per_s (the whole step, tokenization
      included); the last line of standard output says
      "train_seconds S steps N".
  st_train.py losses --model DIR --pairs TSV --batches FILE [--max-length N]
                     [--threads N] [--max-steps N] [--dropout [--seed N]]
      The MNR loss of each batch under the model as it is, without dropout
      (eval mode) and without training: JSON Lines {"step", "loss"}.  Against
      mnr-train --lr 0 on a model whose dropout is 0, this shows that both
      sides trained on the same batches.  --dropout: with the model's dropout
      on, masks drawn from torch seeded by --seed (default 42); two seeds show
      how far dropout alone moves a batch's loss.
  st_train.py rate --batches FILE [--skip N] LOG
      Pairs per second of the steps after the first N of a training log (its
      batches' rows over the sum of their step times):
      "pairs_per_s R steps N pairs P seconds S".
  st_train.py compare [--batches FILE] LOG_A LOG_B
      The per-step losses of two logs side by side: steps, mean and largest
      |difference|, mean loss of each over the whole run and over its first
      and last tenth, the correlation of the two curves, the largest
      difference of the learning rates; with the batch list FILE, each run's
      seconds in its steps (rows / examples_per_s summed).  One "key value"
      a line.

Why a loop rather than SentenceTransformerTrainer: the trainer needs the
datasets and accelerate packages, and its NoDuplicatesBatchSampler draws its
own permutation.  The loop does what one trainer step does (transformers
Trainer.training_step and the inner loop of _inner_training_loop, no gradient
accumulation, fp32): model.train(), the loss on the features its data
collator makes (model.preprocess per column), backward,
clip_grad_norm_(model.parameters(), max_grad_norm), optimizer step, scheduler
step, zero_grad.  The optimiser is the one SentenceTransformerTrainer builds
by default: torch.optim.AdamW(fused=True) (transformers' default optim
"adamw_torch_fused" for torch >= 2.8), betas (0.9, 0.999), eps 1e-8, in two
groups: weight decay on the parameters Trainer.get_decay_parameter_names
returns for the loss model (not biases, not LayerNorm), none on the rest.
The schedule is get_linear_schedule_with_warmup with
TrainingArguments.get_warmup_steps: ceil(steps * ratio) for a ratio below 1.
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np


def read_stream(path):
    """The frames of a tensor stream, concatenated along rows (sequences
    padded with -1 to the longest frame's length)."""
    frames = []
    with open(path, "rb") as f:
        while f.peek(1):
            frames.append(np.load(f))
    length = max(fr.shape[2] for fr in frames)
    return np.concatenate([np.pad(fr, ((0, 0), (0, 0), (0, length - fr.shape[2])), constant_values=-1)
                           for fr in frames])


def cmd_shuffle(args):
    lines = sys.stdin.buffer.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    random.Random(args.seed).shuffle(lines)
    sys.stdout.buffer.write(b"".join(line + b"\n" for line in lines))


def cmd_batches(args):
    import torch
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    ids = read_stream(args.stream)
    texts = [[tuple(int(t) for t in seq if t >= 0) for seq in row] for row in ids]

    class Rows:
        """The little of datasets.Dataset that the sampler uses."""
        column_names = ["c%d" % i for i in range(ids.shape[1])]

        def __len__(self):
            return len(texts)

        def __getitem__(self, i):
            return dict(zip(self.column_names, texts[i]))

    sampler = NoDuplicatesBatchSampler(Rows(), batch_size=args.batch_size, drop_last=False)
    identity = lambda n, generator=None, dtype=None, **kw: torch.arange(n, dtype=dtype)
    randperm, torch.randperm = torch.randperm, identity
    try:
        # One pass over the rows, texts compared as token sequences (the
        # sampler's own __iter__ would compare their str()).
        batches = list(sampler._iter_one_pass(lambda i: set(texts[i]),
                                              lambda s, b: not s.isdisjoint(b)))
    finally:
        torch.randperm = randperm
    for b in batches:
        print(" ".join(map(str, b)))


def read_pairs(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def read_batches(path, max_steps):
    with open(path) as f:
        batches = [[int(x) for x in line.split()] for line in f if line.strip()]
    return batches[:max_steps] if max_steps else batches


def load_model(args):
    """The model of --model; with --init-from-config, its encoder replaced by
    a randomly initialised one of that configuration (same tokenizer and
    pooling), as transformers' AutoModel.from_config makes it."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model, device="cpu")
    config = getattr(args, "init_from_config", None)
    if config:
        from transformers import AutoConfig, AutoModel

        loaded = model[0].model
        model[0].model = AutoModel.from_config(AutoConfig.from_pretrained(config),
                                               attn_implementation=loaded.config._attn_implementation)
        del loaded
    model.max_seq_length = args.max_length
    return model


def batch_features(model, pairs, rows):
    """What the trainer's data collator makes of a batch: each column
    preprocessed on its own, as the list collect_features gives the loss."""
    return [model.preprocess([pairs[r][c] for r in rows]) for c in range(2)]


def fmt(x):
    return float("%.17g" % x)


def cmd_train(args):
    import torch
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss, MultipleNegativesRankingLoss)
    from transformers import Trainer, get_linear_schedule_with_warmup, set_seed

    set_seed(args.seed)  # as the trainer does before it builds anything
    model = load_model(args)
    pairs = read_pairs(args.pairs)
    batches = read_batches(args.batches, args.max_steps)
    if args.mini_batch > 0:
        loss_fn = CachedMultipleNegativesRankingLoss(model, mini_batch_size=args.mini_batch)
    else:
        loss_fn = MultipleNegativesRankingLoss(model)

    decay = set(Trainer.get_decay_parameter_names(None, loss_fn))
    named = [(n, p) for n, p in loss_fn.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": args.weight_decay},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    steps = len(batches)
    warmup = int(args.warmup) if args.warmup >= 1 else math.ceil(steps * args.warmup)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    print("st_train: %d steps, warmup %d, %d threads, %d parameters with weight decay %g, %d without"
          % (steps, warmup, torch.get_num_threads(), sum(p.numel() for p in groups[0]["params"]),
             args.weight_decay, sum(p.numel() for p in groups[1]["params"])), file=sys.stderr)

    start = time.perf_counter()
    with open(args.log, "w") as log:
        for step, rows in enumerate(batches, 1):
            t0 = time.perf_counter()
            model.train()
            # --bf16: CPU autocast's bf16 products in the forward pass (the
            # backward follows its dtypes), fp32 weights and optimizer
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                features = batch_features(model, pairs, rows)
                loss = loss_fn(features, None)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            model.zero_grad()
            dt = time.perf_counter() - t0
            log.write(json.dumps({"step": step, "loss": fmt(loss.item()), "lr": fmt(lr),
                                  "grad_norm": fmt(norm.item()), "examples_per_s": fmt(len(rows) / dt)})
                      + "\n")
            log.flush()
    seconds = time.perf_counter() - start

    if args.out:
        tmp = args.out.rstrip("/") + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save(tmp)
        shutil.rmtree(args.out, ignore_errors=True)
        os.rename(tmp, args.out)
    print("train_seconds %.3f steps %d" % (seconds, steps))


def cmd_losses(args):
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = load_model(args)
    pairs = read_pairs(args.pairs)
    loss_fn = MultipleNegativesRankingLoss(model)
    if args.dropout:
        torch.manual_seed(args.seed)
        model.train()
    else:
        model.eval()
    with torch.no_grad():
        for step, rows in enumerate(read_batches(args.batches, args.max_steps), 1):
            loss = loss_fn(batch_features(model, pairs, rows), None)
            print(json.dumps({"step": step, "loss": fmt(loss.item())}), flush=True)


def read_log(path):
    """The step objects of a training log, by step."""
    with open(path) as f:
        objs = [json.loads(line) for line in f]
    return {o["step"]: o for o in objs if "loss" in o}


def cmd_compare(args):
    a, b = read_log(args.log_a), read_log(args.log_b)
    if sorted(a) != sorted(b):
        sys.exit("st_train: %s and %s log different steps (%d and %d)" % (args.log_a, args.log_b, len(a), len(b)))
    steps = sorted(a)
    x = np.array([a[s]["loss"] for s in steps])
    y = np.array([b[s]["loss"] for s in steps])
    d = np.abs(x - y)
    tenth = max(1, len(steps) // 10)
    print("steps %d" % len(steps))
    print("mean_abs_diff %.3g" % d.mean())
    print("max_abs_diff %.3g" % d.max())
    print("max_abs_diff_step %d" % steps[int(d.argmax())])
    for name, v in (("a", x), ("b", y)):
        print("mean_loss_%s %.6f" % (name, v.mean()))
        print("first_tenth_mean_loss_%s %.6f" % (name, v[:tenth].mean()))
        print("last_tenth_mean_loss_%s %.6f" % (name, v[-tenth:].mean()))
    if len(steps) > 1:
        print("pearson_of_losses %.6f" % np.corrcoef(x, y)[0, 1])
    if all("lr" in a[s] and "lr" in b[s] for s in steps):
        print("max_abs_lr_diff %.3g" % max(abs(a[s]["lr"] - b[s]["lr"]) for s in steps))
    if args.batches:
        # a step's seconds: its rows over its logged examples_per_s
        rows = [len(batch) for batch in read_batches(args.batches, 0)]
        for name, log in (("a", a), ("b", b)):
            print("step_seconds_%s %.1f" % (name, sum(rows[s - 1] / log[s]["examples_per_s"] for s in steps)))


def cmd_rate(args):
    log = read_log(args.log)
    rows = [len(batch) for batch in read_batches(args.batches, 0)]
    steps = [s for s in sorted(log) if s > args.skip]
    if not steps:
        sys.exit("st_train: %s: no steps after step %d" % (args.log, args.skip))
    pairs = sum(rows[s - 1] for s in steps)
    seconds = sum(rows[s - 1] / log[s]["examples_per_s"] for s in steps)
    print("pairs_per_s %.2f steps %d pairs %d seconds %.3f" % (pairs / seconds, len(steps), pairs, seconds))


def main():
    p = argparse.ArgumentParser(description="sentence-transformers' side of pipelines/real-run.sh")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("shuffle")
    s.add_argument("seed", type=int)
    s = sub.add_parser("batches")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("stream")
    for name in ("train", "losses"):
        s = sub.add_parser(name)
        s.add_argument("--model", required=True)
        s.add_argument("--pairs", required=True)
        s.add_argument("--batches", required=True)
        s.add_argument("--max-length", type=int, default=128)
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--max-steps", type=int, default=0)
        if name == "losses":
            s.add_argument("--dropout", action="store_true")
            s.add_argument("--seed", type=int, default=42)
        if name == "train":
            s.add_argument("--init-from-config")
            s.add_argument("--bf16", action="store_true")
            s.add_argument("--out")
            s.add_argument("--log", required=True)
            s.add_argument("--lr", type=float, default=2e-5)
            s.add_argument("--warmup", type=float, default=0.1)
            s.add_argument("--weight-decay", type=float, default=0.01)
            s.add_argument("--max-grad-norm", type=float, default=1.0)
            s.add_argument("--seed", type=int, default=42)
            s.add_argument("--mini-batch", type=int, default=0)
    s = sub.add_parser("rate")
    s.add_argument("--batches", required=True)
    s.add_argument("--skip", type=int, default=0)
    s.add_argument("log")
    s = sub.add_parser("compare")
    s.add_argument("--batches")
    s.add_argument("log_a")
    s.add_argument("log_b")
    args = p.parse_args()
    {"shuffle": cmd_shuffle, "batches": cmd_batches, "train": cmd_train, "losses": cmd_losses,
     "rate": cmd_rate, "compare": cmd_compare}[args.command](args)


if __name__ == "__main__":
    main()
