#!/usr/bin/env python3
"""Check that transformers and sentence-transformers load a directory written
by model_save (tests/unit/model.c) and see exactly our weights.

usage: check_saved.py OUT_DIR REF.safetensors SRC_DIR POOLING NORMALIZE MAX_SEQ_LENGTH

REF.safetensors holds the weights OUT_DIR must contain; SRC_DIR is the model
the tokenizer came from (its tokenizer must give the same ids).  Exit 0 when
all holds, 1 with a message otherwise, 77 when sentence-transformers is not
installed (after the transformers checks passed)."""
import sys
import warnings

import torch
import transformers
from safetensors.torch import load_file

out, ref_path, src, pooling, normalize, max_len = sys.argv[1:7]
normalize, max_len = normalize == "1", int(max_len)
warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
ref = load_file(ref_path)


def fail(msg):
    print(f"check_saved.py: {out}: {msg}", file=sys.stderr)
    sys.exit(1)


def same_weights(state, who):
    for name, want in ref.items():
        if name not in state:
            fail(f"{who}: {name} missing")
        if not torch.equal(state[name].float(), want):
            fail(f"{who}: {name} differs")


model, info = transformers.AutoModel.from_pretrained(out, output_loading_info=True)
if type(model).__name__ != "BertModel":
    fail(f"AutoModel gave {type(model).__name__}")
for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
    if info.get(kind):
        fail(f"AutoModel: {kind}: {info[kind]}")
same_weights(model.state_dict(), "AutoModel")

texts = ["Hello, World!", "A man is playing a guitar.", "naïve café — 東京"]
ids = transformers.AutoTokenizer.from_pretrained(out)(texts)["input_ids"]
if ids != transformers.AutoTokenizer.from_pretrained(src)(texts)["input_ids"]:
    fail("AutoTokenizer ids differ from the source model's")

try:
    from sentence_transformers import SentenceTransformer
except ImportError:
    print("check_saved.py: sentence-transformers not installed", file=sys.stderr)
    sys.exit(77)
st = SentenceTransformer(out, device="cpu")
names = [type(m).__name__ for m in st]
if names != ["Transformer", "Pooling"] + (["Normalize"] if normalize else []):
    fail(f"SentenceTransformer modules {names}")
pool = st[1]
mode = getattr(pool, "pooling_mode", None)
if not isinstance(mode, str):
    mode = pool.get_pooling_mode_str()
if mode != pooling:
    fail(f"SentenceTransformer pooling {mode}, expected {pooling}")
if st.max_seq_length != max_len:
    fail(f"SentenceTransformer max_seq_length {st.max_seq_length}, expected {max_len}")
same_weights(st[0].auto_model.state_dict(), "SentenceTransformer")
