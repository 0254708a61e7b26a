#!/usr/bin/env python3
"""The batches sentence-transformers' NoDuplicatesBatchSampler makes, for
tests/unit/sampler.c.

Reads cases from standard input, each a line "ROWS COLUMNS BATCH_SIZE
DROP_LAST", then one line per row with COLUMNS texts separated by tabs, then
one line with the sampling order (a permutation of the rows).  Prints for
each case its batches, a line of row indices each, for one pass over the rows
in that order (the sampler's torch.randperm is replaced by the given order),
then a line "end".  Exit 77 when sentence-transformers is not installed."""
import sys

try:
    import torch
    try:
        from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
    except ImportError:
        from sentence_transformers.sampler import NoDuplicatesBatchSampler
except ImportError:
    sys.exit(77)


class Rows:
    """The little of datasets.Dataset that the sampler uses."""

    def __init__(self, rows, columns):
        self.rows = rows
        self.column_names = [f"c{i}" for i in range(columns)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return dict(zip(self.column_names, self.rows[i]))


def batches(rows, columns, batch_size, drop_last, order):
    torch.randperm = lambda num, generator=None, dtype=None, **kw: torch.tensor(order, dtype=dtype)
    sampler = NoDuplicatesBatchSampler(Rows(rows, columns), batch_size=batch_size, drop_last=drop_last)
    # One pass: version 6 adds reshuffled passes when drop_last leaves fewer
    # batches than rows // batch_size; an mnr-train epoch is one pass.
    one_pass = getattr(sampler, "_iter_one_pass", None)
    if not one_pass:
        return iter(sampler)
    # the arguments __iter__ passes for plain string columns
    values = lambda i: {str(v) for v in sampler.dataset[i].values()}
    return one_pass(values, lambda s, b: not s.isdisjoint(b))


lines = sys.stdin.read().split("\n")
at = 0
while at < len(lines) and lines[at]:
    n, columns, batch_size, drop_last = map(int, lines[at].split())
    rows = [lines[at + 1 + i].split("\t") for i in range(n)]
    order = [int(x) for x in lines[at + 1 + n].split()]
    at += n + 2
    for b in batches(rows, columns, batch_size, bool(drop_last), order):
        print(" ".join(map(str, b)))
    print("end")
