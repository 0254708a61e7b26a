#!/usr/bin/env python3
"""Small random BERT and MPNet models whose heads have 16, 48 and 128
dimensions (the sizes attention_head_blocked in lib/bert.c takes beside the
64 of the head64 fixtures), saved by transformers (float32, save_pretrained),
so that tests/unit/bert_forward.c runs them against transformers at every
length up to their 300 positions.

usage: mk_head_sizes.py OUTDIR

writes OUTDIR/NAME/model for NAME in bert-head16, bert-head48, bert-head128,
mpnet-head48.  Prints OK at the end; "SKIP reason" (exit 0) when the Python
stack is missing."""
import os
import sys
import warnings

warnings.simplefilter("ignore")
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
try:
    import torch
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel
    from transformers.utils import logging
except Exception as e:  # the tests skip, saying so
    print("SKIP transformers not importable:", type(e).__name__)
    sys.exit(0)

MODELS = {
    # name: config class, model class, hidden, heads
    "bert-head16": (BertConfig, BertModel, 32, 2),
    "bert-head48": (BertConfig, BertModel, 96, 2),
    "bert-head128": (BertConfig, BertModel, 128, 1),
    "mpnet-head48": (MPNetConfig, MPNetModel, 96, 2),
}

logging.disable_progress_bar()
torch.manual_seed(0)
for name, (config_class, model_class, hidden, heads) in MODELS.items():
    # MPNet counts positions from padding_idx + 1 = 2: 302 rows give 300.
    positions = 302 if config_class is MPNetConfig else 300
    config = config_class(vocab_size=500, hidden_size=hidden, num_hidden_layers=1,
                          num_attention_heads=heads, intermediate_size=64,
                          max_position_embeddings=positions, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    model_class(config).save_pretrained(os.path.join(sys.argv[1], name, "model"),
                                        safe_serialization=True)
print("OK")
