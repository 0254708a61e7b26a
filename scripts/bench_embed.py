#!/usr/bin/env python3
"""Helpers for scripts/bench-embed.sh.

  bench_embed.py random-bert DIR VOCAB
      A sentence-transformers model directory of the bert-base shape (hidden
      768, 12 layers, 12 heads, intermediate 3072, vocabulary 30522, 512
      positions) with random weights: normal(0, 0.02) matrices and
      embeddings, zero biases, LayerNorm weight 1 and bias 0; VOCAB is copied
      as vocab.txt; mean pooling, max_seq_length 128.
  bench_embed.py st MODEL SENTENCES THREADS BATCH [fp32|bf16 [MAX_LENGTH]]
      Time sentence-transformers' encode() of the lines of SENTENCES on CPU
      torch with THREADS threads and batches of BATCH (after a warm-up batch,
      the model loaded), in bf16 under torch.autocast("cpu",
      dtype=torch.bfloat16), truncating at MAX_LENGTH tokens when given;
      prints "seconds S sentences N".
  bench_embed.py long SENTENCES COUNT WORDS
      COUNT lines of at least WORDS words each, consecutive lines of
      SENTENCES joined (from the start again when they run out): texts that
      fill a given length once truncated.
  bench_embed.py work MODEL TOKENS BATCH
      The encoder's arithmetic on the token stream TOKENS, real tokens only
      (no padding): per layer and sequence of n tokens, 2n(4H^2 + 2HI) for
      the dense layers and 4n^2 H for attention; prints "gflop G hidden H
      intermediate I layers L rows R", R being the tokens of an average
      batch of BATCH sequences.
"""
import json
import os
import shutil
import sys
import time


def random_bert(out, vocab):
    import numpy as np
    from safetensors.numpy import save_file

    H, L, heads, I, V, P = 768, 12, 12, 3072, 30522, 512
    os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": H,
        "num_hidden_layers": L, "num_attention_heads": heads, "intermediate_size": I,
        "vocab_size": V, "max_position_embeddings": P, "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }
    rng = np.random.default_rng(0)

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    t = {
        "embeddings.word_embeddings.weight": normal(V, H),
        "embeddings.position_embeddings.weight": normal(P, H),
        "embeddings.token_type_embeddings.weight": normal(2, H),
        "embeddings.LayerNorm.weight": np.ones(H, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(H, np.float32),
        "pooler.dense.weight": normal(H, H),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    dense = {"attention.self.query": (H, H), "attention.self.key": (H, H),
             "attention.self.value": (H, H), "attention.output.dense": (H, H),
             "intermediate.dense": (I, H), "output.dense": (H, I)}
    for l in range(L):
        p = "encoder.layer.%d." % l
        for name, (o, i) in dense.items():
            t[p + name + ".weight"] = normal(o, i)
            t[p + name + ".bias"] = np.zeros(o, np.float32)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = np.ones(H, np.float32)
            t[p + ln + ".bias"] = np.zeros(H, np.float32)
    save_file(t, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(vocab, os.path.join(out, "vocab.txt"))
    files = {
        "config.json": config,
        "tokenizer_config.json": {"do_lower_case": True, "model_max_length": P,
                                  "tokenizer_class": "BertTokenizer"},
        "sentence_bert_config.json": {"max_seq_length": 128, "do_lower_case": False},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ],
        "1_Pooling/config.json": {"word_embedding_dimension": H, "pooling_mode_cls_token": False,
                                  "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                                  "pooling_mode_mean_sqrt_len_tokens": False},
    }
    for name, value in files.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(value, f, indent=2)


def st(model_dir, sentences_path, threads, batch, precision="fp32", max_length=None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(int(threads))
    batch = int(batch)
    with open(sentences_path, encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f]
    model = SentenceTransformer(model_dir, device="cpu")
    if max_length:
        model.max_seq_length = int(max_length)
    # bf16: what a PyTorch user writes for bf16 on the CPU (oneDNN's bf16
    # products under autocast, fp32 weights).
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        model.encode(sentences[:batch], batch_size=batch)  # warm-up
        start = time.perf_counter()
        model.encode(sentences, batch_size=batch, convert_to_numpy=True)
    print("seconds %.3f sentences %d" % (time.perf_counter() - start, len(sentences)))


def long(sentences_path, count, words):
    with open(sentences_path, encoding="utf-8") as f:
        words_all = f.read().split()
    count, words = int(count), int(words)
    at = 0
    for _ in range(count):
        line = [words_all[(at + i) % len(words_all)] for i in range(words)]
        at += words
        print(" ".join(line))


def work(model_dir, tokens_path, batch):
    import numpy as np

    config = os.path.join(model_dir, "config.json")
    if not os.path.exists(config):
        config = os.path.join(model_dir, "0_Transformer", "config.json")
    with open(config) as f:
        c = json.load(f)
    H, I, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    lengths = []
    with open(tokens_path, "rb") as f:
        while f.peek(1):
            frame = np.load(f)
            lengths.append((frame >= 0).sum(axis=-1).ravel().astype(np.float64))
    n = np.concatenate(lengths)
    flop = L * (2 * n.sum() * (4 * H * H + 2 * H * I) + 4 * (n * n).sum() * H)
    print("gflop %.3f hidden %d intermediate %d layers %d rows %d"
          % (flop / 1e9, H, I, L, round(n.mean() * int(batch))))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "random-bert":
        random_bert(*args)
    elif cmd == "st":
        st(*args)
    elif cmd == "long":
        long(*args)
    elif cmd == "work":
        work(*args)
    else:
        sys.exit("unknown command " + cmd)
