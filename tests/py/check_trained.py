#!/usr/bin/env python3
"""Check that a directory mnr-train wrote loads in transformers and
sentence-transformers, and that both give the same sentence embeddings for
the sequences of a token stream (and the same as embed's output, if given).

usage: check_trained.py OUT_DIR TOKENS.npy [EMBEDDINGS.npy]

transformers: AutoModel.from_pretrained(OUT_DIR) must find every weight (no
missing or unexpected keys); its last hidden state, mean-pooled over each
sequence, is the reference.  sentence-transformers: SentenceTransformer(OUT_DIR)
must be Transformer + mean Pooling, and its sentence_embedding for the same
ids must agree within 1e-5, as must EMBEDDINGS.npy (embed's (rows, columns, H)
frames).  Exit 1 with a message otherwise."""
import os
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore")

import numpy as np
import torch
import transformers
from sentence_transformers import SentenceTransformer

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
out, tokens = sys.argv[1], sys.argv[2]


def read_stream(path):
    frames = []
    with open(path, "rb") as f:
        while f.peek(1):
            frames.append(np.load(f))
    return frames


def fail(msg):
    sys.exit(f"check_trained.py: {out}: {msg}")


ids = read_stream(tokens)
rows = sum(f.shape[0] for f in ids)
columns = ids[0].shape[1]
seqs = [s[s >= 0] for f in ids for row in f for s in row]  # row-major, as embed writes them
T = max(len(s) for s in seqs)

model, info = transformers.AutoModel.from_pretrained(out, output_loading_info=True)
if info["missing_keys"] or info["unexpected_keys"]:
    fail(f"transformers: missing {info['missing_keys']}, unexpected {info['unexpected_keys']}")
# Padded as the model's tokenizer pads (MPNet: <pad> = 1, which its position ids skip).
pad = model.config.pad_token_id if model.config.model_type == "mpnet" else 0
input_ids = torch.full((len(seqs), T), pad, dtype=torch.long)
mask = torch.zeros((len(seqs), T), dtype=torch.long)
for i, s in enumerate(seqs):
    input_ids[i, : len(s)] = torch.from_numpy(s.astype(np.int64))
    mask[i, : len(s)] = 1
features = {"input_ids": input_ids, "attention_mask": mask}
if model.config.model_type != "mpnet":  # MPNet has no token types
    features["token_type_ids"] = torch.zeros_like(mask)
model.eval()
with torch.no_grad():
    h = model(**features).last_hidden_state
    m = mask.unsqueeze(-1).float()
    ref = ((h * m).sum(1) / m.sum(1)).numpy()

st = SentenceTransformer(out, device="cpu")
kinds = [type(module).__name__ for module in st]
if kinds != ["Transformer", "Pooling"]:
    fail(f"sentence-transformers modules {kinds}, expected Transformer, Pooling")
with torch.no_grad():
    got = st(dict(features))["sentence_embedding"].numpy()
err = float(np.abs(got - ref).max())
print(f"sentence-transformers vs transformers + mean pooling: max abs difference {err:.3g}")
if err > 1e-5:
    fail("sentence-transformers' embeddings differ")
text = st.encode(["A man is playing a guitar."], convert_to_numpy=True)
if text.shape != (1, ref.shape[1]) or not np.isfinite(text).all():
    fail(f"encode() of a text gave {text.shape}")

if len(sys.argv) > 3:
    emb = np.concatenate(read_stream(sys.argv[3]))
    if emb.shape != (rows, columns, ref.shape[1]):
        fail(f"embed's output has shape {emb.shape}, expected {(rows, columns, ref.shape[1])}")
    err = float(np.abs(emb.reshape(-1, ref.shape[1]) - got).max())
    print(f"embed vs sentence-transformers: max abs difference {err:.3g}")
    if err > 1e-5:
        fail("embed's embeddings differ")
