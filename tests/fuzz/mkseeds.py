#!/usr/bin/env python3
"""Write the small hand-made seed corpora of the fuzz harnesses into
tests/fuzz/seeds/NAME/ (committed; rerun after changing this file).
The torch .bin seeds come from tests/py/mkbin.py on a tiny safetensors file.

usage: tests/fuzz/mkseeds.py   (from the repository root)"""
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "tests", "fuzz", "seeds")


def put(harness, name, data):
    d = os.path.join(SEEDS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def npy_frame(descr, shape, values):
    fmt = {"<i4": "<%di", "<f4": "<%df"}[descr] % len(values)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(map(str, shape)))
    total = 10 + len(header) + 1
    header += " " * ((total + 63) // 64 * 64 - total) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + \
        struct.pack(fmt, *values)


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def main():
    # npy: the first byte picks the dtype (even: <i4 tokens, odd: <f4).
    toks = [2, 8, 3, -1, 2, 9, 10, 3] + [2, 3, -1, -1, 2, 11, 12, 3]
    put("npy", "tokens", b"\x00" + npy_frame("<i4", (2, 2, 4), toks))
    put("npy", "tokens-two-frames", b"\x00" + npy_frame("<i4", (1, 1, 3), [2, 5, 3]) * 2)
    put("npy", "empty-frame", b"\x00" + npy_frame("<i4", (0, 2, 4), []))
    put("npy", "embeddings", b"\x01" + npy_frame("<f4", (1, 2, 3), [0.5, 1, -1, 2, 0, 0.25]))
    put("npy", "bad-padding", b"\x00" + npy_frame("<i4", (1, 1, 3), [2, -1, 3]))

    # safetensors
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    put("safetensors", "two", safetensors([("a.weight", "F32", [2, 2], f32),
                                           ("a.bias", "F16", [2], b"\x00\x3c\x00\xc0")],
                                          {"format": "pt"}))
    put("safetensors", "bf16-i64", safetensors([("x", "BF16", [1, 2], b"\x80\x3f\x00\x40"),
                                                ("y", "I64", [1], struct.pack("<q", 7)),
                                                ("z", "F32", [0, 3], b"")]))
    put("safetensors", "empty", safetensors([]))

    # config.json
    cfg = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 144,
           "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "max_position_embeddings": 128, "type_vocab_size": 2,
           "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1,
           "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
           "position_embedding_type": "absolute", "pad_token_id": 0}
    put("config", "tiny", json.dumps(cfg, indent=2))
    put("config", "minimal", json.dumps({k: cfg[k] for k in ("vocab_size", "hidden_size",
            "num_hidden_layers", "num_attention_heads", "intermediate_size")}))
    mpnet = dict(cfg, architectures=["MPNetForMaskedLM"], model_type="mpnet", pad_token_id=1,
                 relative_attention_num_buckets=32, layer_norm_eps=1e-5)
    del mpnet["type_vocab_size"], mpnet["position_embedding_type"]
    put("config", "mpnet", json.dumps(mpnet, indent=2))

    # tokenizer: the first byte picks max_len - 2.
    for name, text in [("hello", "Hello, world!"), ("accents", "Café naïve Ölçü ß"),
                       ("cjk", "日本語の文字 中文"), ("special", "[CLS] a [SEP] [MASK]x[UNK]"),
                       ("mixed", "The man is playing guitar.\tunaffable — “quoted” …"),
                       ("controls", "a\x00b\x07c\u200bd\ue000e\ufffd")]:
        put("wordpiece", name, b"\x7e" + text.encode())
    put("wordpiece", "short", b"\x01hello world again")
    put("wordpiece", "invalid", b"\x20ok \xc3\x28 \xed\xa0\x80")

    # tokenizer.json, alone in a model directory (no vocab.txt)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>",
                                         "<pad>", "hello", "world", ",", "!", "caf", "##e", "a",
                                         "b", "c", "##ing", "日", "本"])}
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    bert = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": True,
                           "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}},
                                          {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                               "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                                  "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab}}
    put("tokenizer_json", "bert-template", json.dumps(bert, indent=1, ensure_ascii=False))
    mpnet_vocab = dict(vocab, **{"<mask>": 20})
    mpnet_tok = dict(bert, added_tokens=[dict(a, content=t, id=mpnet_vocab[t]) for a, t in
                                         zip(added, ("<s>", "<pad>", "</s>", "[UNK]", "<mask>"))],
                     post_processor={"type": "RobertaProcessing", "sep": ["</s>", 6],
                                     "cls": ["<s>", 5], "trim_offsets": True,
                                     "add_prefix_space": False},
                     model=dict(bert["model"], vocab=mpnet_vocab))
    put("tokenizer_json", "mpnet-roberta", json.dumps(mpnet_tok, ensure_ascii=False))
    put("tokenizer_json", "minimal", json.dumps({"model": {"vocab": {"[UNK]": 0, "[CLS]": 1,
                                                                      "[SEP]": 2, "x": 3}}}))
    put("tokenizer_json", "bpe", json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}}}))

    # nli-filter rows
    put("nli", "snli", json.dumps({"gold_label": "entailment", "sentence1": "A man plays.",
                                   "sentence2": "Someone plays.", "annotator_labels": ["entailment"]})
        + "\n" + json.dumps({"gold_label": "-", "sentence1": "x", "sentence2": "y"}) + "\n")
    put("nli", "hf", json.dumps({"premise": "A dog\truns.", "hypothesis": "An animal moves.",
                                 "label": 0}) + "\n")
    put("nli", "tsv", "A man plays.\tSomeone plays.\tentailment\r\nA\tB\t2\nx\ty\t-1\n")
    # mnr-train --labels files: the first byte is the row count
    put("labels", "three", b"\x03" + b"0\n1\n2\n")
    put("labels", "crlf-no-final-newline", b"\x02" + b"2\r\n0")
    put("labels", "too-few", b"\x05" + b"1\n1\n")
    put("labels", "bad", b"\x02" + b"1\n+3\n")

    # model.safetensors for tests/fuzz/weights.c's config (vocabulary 128,
    # hidden 8, 1 layer, intermediate 16, 8 positions, 2 token types)
    V, H, I, P = 128, 8, 16, 8
    shapes = [("embeddings.word_embeddings.weight", [V, H]),
              ("embeddings.position_embeddings.weight", [P, H]),
              ("embeddings.token_type_embeddings.weight", [2, H]),
              ("embeddings.LayerNorm.weight", [H]), ("embeddings.LayerNorm.bias", [H])]
    for m in ["query", "key", "value"]:
        shapes += [("encoder.layer.0.attention.self.%s.weight" % m, [H, H]),
                   ("encoder.layer.0.attention.self.%s.bias" % m, [H])]
    shapes += [("encoder.layer.0.attention.output.dense.weight", [H, H]),
               ("encoder.layer.0.attention.output.dense.bias", [H]),
               ("encoder.layer.0.attention.output.LayerNorm.weight", [H]),
               ("encoder.layer.0.attention.output.LayerNorm.bias", [H]),
               ("encoder.layer.0.intermediate.dense.weight", [I, H]),
               ("encoder.layer.0.intermediate.dense.bias", [I]),
               ("encoder.layer.0.output.dense.weight", [H, I]),
               ("encoder.layer.0.output.dense.bias", [H]),
               ("encoder.layer.0.output.LayerNorm.weight", [H]),
               ("encoder.layer.0.output.LayerNorm.bias", [H]),
               ("pooler.dense.weight", [H, H]), ("pooler.dense.bias", [H])]

    def numel(shape):
        return shape[0] * (shape[1] if len(shape) > 1 else 1)

    def values(name, n):
        # small numbers, different in every tensor; BF16 and F16 exact
        base = sum(map(ord, name)) % 97
        return [((base + 7 * i) % 61 - 30) / 32.0 for i in range(n)]

    def tensors(dtype, rename=lambda n: n, skip_pooler=False):
        out = []
        for name, shape in shapes:
            if skip_pooler and name.startswith("pooler."):
                continue
            v = values(name, numel(shape))
            if dtype == "F32":
                raw = struct.pack("<%df" % len(v), *v)
            elif dtype == "F16":
                raw = struct.pack("<%de" % len(v), *v)
            else:  # BF16: the top half of the float
                raw = b"".join(struct.pack("<f", x)[2:] for x in v)
            out.append((rename(name), dtype, shape, raw))
        return out

    # F32 with the data starting on a 4 KB page (the header padded with
    # spaces) and the word embeddings first: their one page is mapped in place
    st = safetensors(tensors("F32"))
    hlen = struct.unpack("<Q", st[:8])[0]
    pad = (4096 - (8 + hlen) % 4096) % 4096
    put("weights", "f32-page", struct.pack("<Q", hlen + pad) + st[8:8 + hlen] + b" " * pad +
        st[8 + hlen:])
    put("weights", "bf16-no-pooler", safetensors(tensors("BF16", skip_pooler=True)))
    hub = lambda n: "bert." + n.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
        "LayerNorm.bias", "LayerNorm.beta")
    put("weights", "f16-hub-names", safetensors(tensors("F16", rename=hub)))

    # torch .bin, from a tiny safetensors file by tests/py/mkbin.py
    with tempfile.TemporaryDirectory() as tmp:
        st = os.path.join(tmp, "in.safetensors")
        with open(st, "wb") as f:
            f.write(safetensors([("embeddings.word_embeddings.weight", "F32", [2, 2], f32),
                                 ("encoder.layer.0.output.dense.bias", "F32", [2], f32[:8])]))
        for variant in ["", "noncontig", "short"]:
            out = os.path.join(tmp, "out.bin")
            subprocess.run([sys.executable, os.path.join(ROOT, "tests", "py", "mkbin.py"), st, out]
                           + ([variant] if variant else []), check=True)
            with open(out, "rb") as f:
                put("torchbin", variant or "state-dict", f.read())


main()
