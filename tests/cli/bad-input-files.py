#!/usr/bin/env python3
"""Write the inputs of the bad-input suite (tests/cli/bad-input.t) into DIR:
token and embedding streams, NLI rows, gold scores, vocabularies and model
directories that differ from the tiny fixture model in one file each (the
others are symbolic links to SHARED/fixtures/tiny/model).  Python's standard
library only; torch .bin files come from tests/py/mkbin.py.

usage: bad-input-files.py DIR SHARED"""
import json
import os
import shutil
import struct
import subprocess
import sys

OUT, SHARED = sys.argv[1], sys.argv[2]
TINY = os.path.join(SHARED, "fixtures", "tiny", "model")
HERE = os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)
os.chdir(OUT)


def write(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def header(descr="<i4", shape="(1, 1, 3)", extra=None, raw=None):
    h = raw if raw is not None else \
        "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    if extra:
        h = h[:-1] + extra + "}"
    total = 10 + len(h) + 1
    h += " " * ((total + 63) // 64 * 64 - total) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()


def frame(values, shape, descr="<i4"):
    fmt = "<%d%s" % (len(values), "i" if descr == "<i4" else "f")
    return header(descr, "(%s)" % ", ".join(map(str, shape))) + struct.pack(fmt, *values)


# ---- token streams (embed) and embedding streams (spearman) ----
ok = frame([101, 7592, 102, 101, 2088, 102], (1, 2, 3))
write("s/ok.npy", ok)
write("s/empty.npy", b"")
write("s/overflow.npy", header(shape="(2147483647, 2147483647, 4)"))
write("s/overflow-zero.npy", header(shape="(2097152, 2097152, 1048576)"))  # x4 wraps to 0 bytes
write("s/overflow3.npy", header(shape="(2147483647, 2147483647, 2147483647)"))
write("s/toolarge.npy", header(shape="(1024, 1024, 1025)"))
write("s/badmagic.npy", b"\x93NUMPZ\x01\x00" + ok[8:])
write("s/short-preamble.npy", ok[:5])
write("s/short-header.npy", ok[:40])
write("s/short-data.npy", ok[:-4])
write("s/version.npy", b"\x93NUMPY\x09\x00" + ok[8:])
write("s/fortran.npy", header(raw="{'descr': '<i4', 'fortran_order': True, 'shape': (1, 1, 3), }")
      + struct.pack("<3i", 101, 102, -1))
write("s/f4-as-tokens.npy", frame([1.0, 2.0, 3.0], (1, 1, 3), "<f4"))
write("s/2d.npy", header(shape="(1, 3)") + struct.pack("<3i", 101, 7592, 102))
write("s/4d.npy", header(shape="(1, 1, 1, 3)") + struct.pack("<3i", 101, 7592, 102))
write("s/negdim.npy", header(shape="(1, -1, 3)"))
write("s/nul-header.npy", header(raw="{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1, 3), }\0"))
write("s/unknown-key.npy", header(extra="'x': 1, ") + struct.pack("<3i", 101, 7592, 102))
write("s/dup-key.npy", header(extra="'descr': '<i4', ") + struct.pack("<3i", 101, 7592, 102))
write("s/missing-key.npy", header(raw="{'descr': '<i4', 'shape': (1, 1, 3), }") + struct.pack("<3i", 101, 7592, 102))
write("s/bad-padding.npy", frame([101, -1, 102], (1, 1, 3)))
write("s/bad-id.npy", frame([101, 30522, 102], (1, 1, 3)))
write("s/neg-id.npy", frame([101, -5, 102], (1, 1, 3)))
write("s/second-bad.npy", ok + header(shape="(1, 1, 3)", extra="'y': 2, "))
write("s/garbage-after.npy", ok + b"junk")
emb = frame([1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0.5, 1], (3, 2, 2), "<f4")
write("s/emb.npy", emb)
write("s/emb-overflow.npy", header("<f4", "(2147483647, 2147483647, 4)"))
write("s/emb-overflow-zero.npy", header("<f4", "(2097152, 2097152, 1048576)"))
write("s/emb-1col.npy", frame([1, 0, 0, 1], (2, 1, 2), "<f4"))
write("s/gold3.txt", "1.0\n2.5\n4\n")
write("s/gold2.txt", "1.0\n2.5\n")
write("s/gold-word.txt", "1.0\nabc\n4\n")
write("s/gold-empty-line.txt", "1.0\n\n4\n")
write("s/scores3.txt", "0.1\n0.2\n0.3\n")

# ---- NLI rows ----
snli = lambda g, a="A man plays.", b="Someone plays.": json.dumps(
    {"gold_label": g, "sentence1": a, "sentence2": b})
write("n/ok.jsonl", snli("entailment") + "\n" + snli("neutral") + "\n")
write("n/bad-json.jsonl", snli("entailment") + "\n{\"gold_label\": \n")
write("n/not-object.jsonl", "[1, 2]\n")
write("n/missing.jsonl", json.dumps({"gold_label": "entailment", "sentence1": "x"}) + "\n")
write("n/unknown-gold.jsonl", snli("maybe") + "\n")
write("n/newline-gold.jsonl", snli("entail\nment") + "\n")
write("n/hf-label-string.jsonl", json.dumps({"premise": "a", "hypothesis": "b", "label": "0"}) + "\n")
write("n/hf-label-7.jsonl", json.dumps({"premise": "a", "hypothesis": "b", "label": 7}) + "\n")
write("n/neither.jsonl", json.dumps({"text": "a"}) + "\n")
write("n/dup-key.jsonl", '{"gold_label": "entailment", "gold_label": "neutral", "sentence1": "a", "sentence2": "b"}\n')
write("n/tsv-2col.tsv", "a\tb\tentailment\nonly\ttwo\n")
write("n/tsv-label.tsv", "a\tb\tyes\n")
write("n/tsv-utf8.tsv", b"a\xff\tb\tentailment\n")
write("n/tsv-nul.tsv", b"a\x00b\tc\tentailment\n")
write("n/ok.tsv", "a\tb\tentailment\nc\td\t2\n")

# ---- text for wp-tokenize ----
write("t/ok.tsv", "Hello, world!\tA second column.\n")
write("t/bad-utf8.tsv", b"fine\tfine\nbroken \xc3\x28 text\tx\n")
write("t/surrogate.tsv", b"ok\n\xed\xa0\x80\n")
write("t/uneven.tsv", "a\tb\nc\n")
write("t/vocab-ok.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
write("t/vocab-nocls.txt", "[PAD]\n[UNK]\n[SEP]\nhello\n")
write("t/vocab-empty.txt", "")


# ---- model directories: the tiny model with one file replaced ----
def model(name, replace=None, drop=()):
    d = "m/" + name
    os.makedirs(d, exist_ok=True)
    replace = replace or {}
    for f in os.listdir(TINY):
        if f not in replace and f not in drop:
            os.symlink(os.path.join(TINY, f), os.path.join(d, f))
    for f, data in replace.items():
        write(os.path.join(d, f), data)
    return d


cfg = json.load(open(os.path.join(TINY, "config.json")))


def config(**change):
    c = dict(cfg)
    for k, v in change.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return json.dumps(c, indent=2)


model("ok")
model("cfg-syntax", {"config.json": '{\n  "vocab_size": 30522,\n  "hidden_size": ,\n}\n'})
model("cfg-array", {"config.json": "[]"})
model("cfg-no-vocab", {"config.json": config(vocab_size=None)})
model("cfg-heads", {"config.json": config(num_attention_heads=5)})
model("cfg-act", {"config.json": config(hidden_act="relu")})
model("cfg-type", {"config.json": config(model_type="roberta")})
model("cfg-layers", {"config.json": config(num_hidden_layers=-2)})
model("cfg-dropout", {"config.json": config(hidden_dropout_prob=1.5)})
model("cfg-eps", {"config.json": config(layer_norm_eps=0)})
model("cfg-hidden-str", {"config.json": config(hidden_size="32")})
# MPNet: settings transformers' MPNet does not follow, and BERT's weights under its names
model("cfg-mpnet-pad", {"config.json": config(model_type="mpnet", pad_token_id=0)})
model("cfg-mpnet-buckets", {"config.json": config(model_type="mpnet", pad_token_id=1, relative_attention_num_buckets=16)})
model("cfg-mpnet-bert-weights", {"config.json": config(model_type="mpnet", pad_token_id=1)})
model("sb-negative", {"sentence_bert_config.json": '{"max_seq_length": -5}'})
model("sb-absurd", {"sentence_bert_config.json": '{"max_seq_length": 100000000}'})
model("sb-string", {"sentence_bert_config.json": '{"max_seq_length": "128"}'})
model("tok-negative", {"tokenizer_config.json": '{"do_lower_case": true, "model_max_length": -1}'})
model("tok-huge", {"tokenizer_config.json": '{"do_lower_case": true, "model_max_length": 1e30}'})
model("tok-syntax", {"tokenizer_config.json": '{"do_lower_case": true,\n "model_max_length": }'})
model("no-vocab", drop=("vocab.txt", "tokenizer.json"))
model("tokjson-only", drop=("vocab.txt",))
model("tokjson-bad", {"tokenizer.json": '{"model": {"vocab": {"[CLS]": "x"}}}'}, drop=("vocab.txt",))
model("tokjson-novocab", {"tokenizer.json": '{"model": {}}'}, drop=("vocab.txt",))
model("tokjson-bpe", {"tokenizer.json": '{"model": {"type": "BPE", "vocab": {}}}'})
model("tok-class", {"tokenizer_config.json": '{"tokenizer_class": "XLMRobertaTokenizer"}'})
model("tokjson-template", {"tokenizer.json": '{"post_processor": {"type": "TemplateProcessing", '
      '"single": [{"Sequence": {"id": "A", "type_id": 0}}]}}'})
model("tokjson-syntax", {"tokenizer.json": '{\n"model": [\n'}, drop=("vocab.txt",))
model("vocab-nocls", {"vocab.txt": "[PAD]\n[UNK]\n[SEP]\n"}, drop=("tokenizer.json",))
model("modules-bad", {"modules.json": '[{"type": "sentence_transformers.models.Dense", "path": ""}]'})
model("pooling-bad", {"modules.json": json.dumps([
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]),
    "1_Pooling/config.json": '{"word_embedding_dimension": 32, "pooling_mode_weightedmean_tokens": true}'})
model("no-weights", drop=("model.safetensors",))

# safetensors variants, from the fixture's bytes
st = open(os.path.join(TINY, "model.safetensors"), "rb").read()
hlen = struct.unpack("<Q", st[:8])[0]
hdr = json.loads(st[8:8 + hlen])
data = st[8 + hlen:]


def pack(h, d, pad=True):
    hb = json.dumps(h).encode()
    return struct.pack("<Q", len(hb)) + hb + d


names = sorted((k for k in hdr if k != "__metadata__"), key=lambda k: hdr[k]["data_offsets"][0])
first, second = names[0], names[1]


def edit(fn):
    h = json.loads(json.dumps(hdr))
    fn(h)
    return h


def overlap(h):  # the second tensor starts 4 bytes early, the third... the data no longer tiles
    b, e = h[second]["data_offsets"]
    h[second]["data_offsets"] = [b - 4, e - 4]


def gap(h):
    b, e = h[first]["data_offsets"]
    h[first]["data_offsets"] = [b, e]
    for k in names:
        h[k]["data_offsets"] = [h[k]["data_offsets"][0] + 4, h[k]["data_offsets"][1] + 4]


model("st-overlap", {"model.safetensors": pack(edit(overlap), data)})
model("st-trailing", {"model.safetensors": st + b"\0" * 16})
model("st-gap", {"model.safetensors": pack(edit(gap), b"\0" * 4 + data)})
model("st-truncated", {"model.safetensors": st[:-100]})
model("st-short", {"model.safetensors": st[:5]})
model("st-empty", {"model.safetensors": b""})
model("st-hlen", {"model.safetensors": struct.pack("<Q", 1 << 62) + st[8:]})
model("st-header-big", {"model.safetensors": struct.pack("<Q", 200_000_000) + st[8:]})
model("st-not-object", {"model.safetensors": pack([1], b"")})
model("st-dtype", {"model.safetensors": pack(edit(lambda h: h[first].update(dtype="F8_E4M3")), data)})
model("st-shape", {"model.safetensors": pack(edit(lambda h: h[first].update(
    shape=[h[first]["shape"][0] * 2] + h[first]["shape"][1:])), data)})
model("st-metadata", {"model.safetensors": pack(edit(lambda h: h.update(__metadata__={"format": 1})), data)})
model("st-missing", {"model.safetensors": pack(edit(lambda h: h.update({first + "_renamed": h.pop(first)})), data)})
flat = next(k for k in names if len(hdr[k]["shape"]) == 2 and hdr[k]["shape"][0] != hdr[k]["shape"][1])
model("st-transposed", {"model.safetensors": pack(edit(lambda h: h[flat].update(shape=h[flat]["shape"][::-1])), data)})
hb = json.dumps(hdr).encode()
dup = hb[:-1] + b', "' + first.encode() + b'": ' + json.dumps(hdr[first]).encode() + b"}"
model("st-dupkey", {"model.safetensors": struct.pack("<Q", len(dup)) + dup + data})
model("st-garbage-header", {"model.safetensors": struct.pack("<Q", 16) + b"{\"a\": nonsense}" + data})

# torch .bin: tests/py/mkbin.py from the fixture, well-formed and hostile
for variant in ["", "compressed", "global", "noncontig", "opcode", "legacy", "short"]:
    d = model("bin-" + (variant or "ok"), drop=("model.safetensors",))
    subprocess.run([sys.executable, os.path.join(HERE, "..", "py", "mkbin.py"),
                    os.path.join(TINY, "model.safetensors"), os.path.join(d, "pytorch_model.bin")]
                   + ([variant] if variant else []), check=True)
good = open("m/bin-ok/pytorch_model.bin", "rb").read()
model("bin-truncated", {"pytorch_model.bin": good[: len(good) // 2]}, drop=("model.safetensors",))
model("bin-empty", {"pytorch_model.bin": b""}, drop=("model.safetensors",))
# a pickle that calls builtins.eval: the zip of bin-ok with data.pkl replaced
import io, zipfile  # noqa: E402
src = zipfile.ZipFile(io.BytesIO(good))
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    for info in src.infolist():
        body = src.read(info)
        if info.filename.endswith("data.pkl"):
            body = b"\x80\x02cbuiltins\neval\nX\x0f\x00\x00\x00print('pwned')\x85R."
        z.writestr(info, body)
model("bin-eval", {"pytorch_model.bin": buf.getvalue()}, drop=("model.safetensors",))
write("m/not-a-dir", "x")
