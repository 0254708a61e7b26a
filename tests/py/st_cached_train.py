#!/usr/bin/env python3
"""Three training steps of sentence-transformers' CachedMultipleNegativesRankingLoss
on a fixture's batches train.batch{0,1,2}, with the fixture's optimiser
settings (AdamW, eps 1e-6, weight decay 0.01 except on biases and LayerNorm
weights, peak lr LR with 2 warmup steps of a 10-step linear schedule, clipping
to norm 1), for tests/cli/mini-batch.bats.

usage: st_cached_train.py MODEL_DIR REFERENCE.safetensors MINI_BATCH LR LOG.jsonl OUT.safetensors

Writes the loss of each step as JSON Lines ({"step": k, "loss": x}) and the
weights after the third step under the model's own tensor names."""
import json
import sys

import torch
from safetensors.numpy import load_file, save_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.losses import CachedMultipleNegativesRankingLoss
from transformers import get_linear_schedule_with_warmup


def main():
    model_dir, ref_path, mini, lr, log_path, out_path = sys.argv[1:7]
    torch.set_num_threads(1)
    model = SentenceTransformer(model_dir, device="cpu")
    model.train()
    loss_fn = CachedMultipleNegativesRankingLoss(model, scale=20.0, mini_batch_size=int(mini))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=float(lr), betas=(0.9, 0.999), eps=1e-6)
    sched = get_linear_schedule_with_warmup(opt, 2, 10)
    ref = load_file(ref_path)
    with open(log_path, "w") as log:
        for b in range(3):
            features = []
            for column in ("anchor", "positive"):
                key = f"train.batch{b}.{column}"
                features.append({"input_ids": torch.from_numpy(ref[key + ".input_ids"]).long(),
                                 "attention_mask": torch.from_numpy(ref[key + ".attention_mask"]).long()})
            opt.zero_grad()
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            log.write(json.dumps({"step": b + 1, "loss": loss.item()}) + "\n")
    weights = model[0].auto_model.state_dict()
    save_file({n: t.detach().contiguous().numpy() for n, t in weights.items()}, out_path)


main()
