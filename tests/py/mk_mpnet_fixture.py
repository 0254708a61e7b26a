#!/usr/bin/env python3
"""Two small random MPNet models and their reference values, computed now by
transformers and sentence-transformers (float64 on the CPU), in the layout of
../shared/fixtures/{tiny,head64} (see its README), so that the encoder and
training tests run unchanged on them.

usage: mk_mpnet_fixture.py OUTDIR

writes OUTDIR/mpnet-tiny and OUTDIR/mpnet-head64, each with
  model/                   MPNetModel.save_pretrained (float32) and a vocabulary
  hubstyle/                the same weights as MPNetForMaskedLM saves them ("mpnet." prefix, lm_head.*, no pooler)
  reference.safetensors    {anchor,positive,negative}.{input_ids,attention_mask},
                           anchor.hidden_states.0..L, *.embedding, scores.triplets,
                           loss.{pairs,triplets,symmetric}, grad_embedding.pairs.*,
                           grad.<param>, train.batch{0,1,2}.*, train.{losses,grad_norms,lrs},
                           after.<param>, and rel_bucket.{rel,bucket}: transformers'
                           bucket of every relative position from -600 to 600.
Prints OK at the end; "SKIP reason" (exit 0) when the Python stack is missing.

The sequences hold ids 0 (<s>) first and 2 (</s>) last, random ids between, one
anchor longer than 91 tokens (the last bucket of the relative position bias)
and one literal <pad> (id 1) inside a sequence: transformers gives it position
1, and the word and position rows 1 no gradient.  Training: MNR on (anchor,
positive), AdamW (eps 1e-6, weight decay 0.01 except on names with "bias" or
"LayerNorm", as transformers' Trainer), clipping to norm 1, lr 1e-3 with 2
warmup steps of 10, three steps: mnr-train's options in mnr-train.bats."""
import os
import sys
import warnings

warnings.simplefilter("ignore")
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:
    import numpy as np
    import torch
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer, losses, models
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetModel, get_linear_schedule_with_warmup
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder
except Exception as e:  # the tests skip, saying so
    print("SKIP transformers / sentence-transformers not importable:", type(e).__name__)
    sys.exit(0)

torch.set_num_threads(1)
SHAPES = {
    # name: layers, hidden, heads, intermediate, vocab, max positions, batch
    "mpnet-tiny": (2, 32, 4, 64, 1000, 514, 6),
    "mpnet-head64": (2, 128, 2, 512, 4096, 130, 8),
}


def sequences(rng, B, V, max_tokens, long_one=False, with_pad=False):
    lens = rng.integers(3, 40, size=B)
    if long_one:
        lens[1] = min(140, max_tokens)
    seqs = []
    for b in range(B):
        ids = rng.integers(5, V, size=lens[b])
        ids[0], ids[-1] = 0, 2
        if with_pad and b == 2:
            ids[len(ids) // 2] = 1
        seqs.append(ids)
    return seqs


def padded(seqs):
    T = max(len(s) for s in seqs)
    ids = np.ones((len(seqs), T), dtype=np.int32)  # <pad>, as the tokenizer pads
    mask = np.zeros((len(seqs), T), dtype=np.int32)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = s
        mask[b, : len(s)] = 1
    return ids, mask


def features(ids, mask):
    return {"input_ids": torch.tensor(ids).long(), "attention_mask": torch.tensor(mask).long()}


def make(out, name, seed):
    L, H, heads, I, V, P, B = SHAPES[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = MPNetConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=heads,
                      intermediate_size=I, max_position_embeddings=P, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5,
                      relative_attention_num_buckets=32, pad_token_id=1, bos_token_id=0,
                      eos_token_id=2)
    model = MPNetModel(cfg)
    # Larger than the init's 0.02, so that the bias visibly shapes attention.
    with torch.no_grad():
        model.encoder.relative_attention_bias.weight.normal_(0, 0.5)
    mdir = os.path.join(out, name, "model")
    model.save_pretrained(mdir)
    # The pre-training checkpoints' layout: "mpnet." prefix and the lm_head,
    # which a sentence model ignores.
    mlm = MPNetForMaskedLM(cfg)
    mlm.mpnet.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("pooler.")})
    mlm.save_pretrained(os.path.join(out, name, "hubstyle"))
    with open(os.path.join(mdir, "vocab.txt"), "w") as f:
        specials = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"]
        f.writelines(t + "\n" for t in specials + [f"w{i}" for i in range(len(specials), V - 1)] + ["<mask>"])
    with open(os.path.join(mdir, "tokenizer_config.json"), "w") as f:
        f.write('{"tokenizer_class": "MPNetTokenizer", "do_lower_case": true, "model_max_length": %d}\n'
                % (P - 2))

    tf = models.Transformer(mdir)
    st = SentenceTransformer(modules=[tf, models.Pooling(H, "mean")], device="cpu").double()
    hf = tf.auto_model
    hf.eval()
    ref = {}
    cols = {}
    for k, c in enumerate(("anchor", "positive", "negative")):
        ids, mask = padded(sequences(rng, B, V, P - 2, long_one=(c == "anchor"), with_pad=(c == "positive")))
        ref[f"{c}.input_ids"], ref[f"{c}.attention_mask"] = ids, mask
        cols[c] = features(ids, mask)

    with torch.no_grad():
        o = hf(**cols["anchor"], output_hidden_states=True)
        for layer, h in enumerate(o.hidden_states):
            ref[f"anchor.hidden_states.{layer}"] = h.float().numpy()
        emb = {c: st(dict(f))["sentence_embedding"] for c, f in cols.items()}
        for c, e in emb.items():
            ref[f"{c}.embedding"] = e.float().numpy()
        a = torch.nn.functional.normalize(emb["anchor"], dim=1)
        cand = torch.nn.functional.normalize(torch.cat([emb["positive"], emb["negative"]]), dim=1)
        ref["scores.triplets"] = (20 * a @ cand.T).float().numpy()

    pairs = [dict(cols["anchor"]), dict(cols["positive"])]
    mnr = losses.MultipleNegativesRankingLoss(st)
    sym = losses.MultipleNegativesSymmetricRankingLoss(st)
    labels = torch.arange(B)
    with torch.no_grad():
        ref["loss.triplets"] = np.array([mnr([dict(f) for f in cols.values()], labels).item()])
        ref["loss.symmetric"] = np.array([sym([dict(f) for f in pairs], labels).item()])

    # Gradients of loss.pairs: of the pooled embeddings and of every parameter.
    st.zero_grad()
    outs = [st(dict(f))["sentence_embedding"] for f in pairs]
    for e in outs:
        e.retain_grad()
    a = torch.nn.functional.normalize(outs[0], dim=1)
    p = torch.nn.functional.normalize(outs[1], dim=1)
    loss = torch.nn.functional.cross_entropy(20 * a @ p.T, labels)
    loss.backward()
    with torch.no_grad():
        check = mnr([dict(f) for f in pairs], labels).item()
    if abs(check - loss.item()) > 1e-12 * abs(check):
        sys.exit(f"{name}: our MNR formula {loss.item()} differs from sentence-transformers' {check}")
    ref["loss.pairs"] = np.array([loss.item()])
    ref["grad_embedding.pairs.anchor"] = outs[0].grad.float().numpy()
    ref["grad_embedding.pairs.positive"] = outs[1].grad.float().numpy()
    for n, prm in hf.named_parameters():
        if prm.grad is not None:
            ref[f"grad.{n}"] = prm.grad.float().numpy()

    # Three AdamW steps on three batches of (anchor, positive).
    batches = []
    for b in range(3):
        bb = {}
        for c in ("anchor", "positive"):
            ids, mask = padded(sequences(rng, B, V, P - 2, with_pad=(b == 1 and c == "anchor")))
            ref[f"train.batch{b}.{c}.input_ids"], ref[f"train.batch{b}.{c}.attention_mask"] = ids, mask
            bb[c] = features(ids, mask)
        batches.append(bb)
    named = [(n, q) for n, q in hf.named_parameters() if not n.startswith("pooler.")]
    groups = [{"params": [q for n, q in named if "bias" not in n and "LayerNorm" not in n], "weight_decay": 0.01},
              {"params": [q for n, q in named if "bias" in n or "LayerNorm" in n], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-6)
    sched = get_linear_schedule_with_warmup(opt, 2, 10)
    tl, tn, tr = [], [], []
    for bb in batches:
        opt.zero_grad()
        tr.append(sched.get_last_lr()[0])
        step_loss = mnr([dict(bb["anchor"]), dict(bb["positive"])], labels)
        step_loss.backward()
        tn.append(torch.nn.utils.clip_grad_norm_([q for _, q in named], 1.0).item())
        tl.append(step_loss.item())
        opt.step()
        sched.step()
    ref["train.losses"] = np.array(tl)
    ref["train.grad_norms"] = np.array(tn)
    ref["train.lrs"] = np.array(tr)
    for n, q in hf.state_dict().items():
        if n != "embeddings.position_ids":
            ref[f"after.{n}"] = q.float().numpy()

    rel = torch.arange(-600, 601)
    ref["rel_bucket.rel"] = rel.numpy().astype(np.int32)
    ref["rel_bucket.bucket"] = MPNetEncoder.relative_position_bucket(rel).numpy().astype(np.int32)
    for k in ref:
        if ref[k].dtype == np.float64 and not k.startswith(("loss.", "train.")):
            ref[k] = ref[k].astype(np.float32)
    save_file({k: np.ascontiguousarray(v) for k, v in ref.items()}, os.path.join(out, name, "reference.safetensors"))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_default_dtype(torch.float32)
    for i, name in enumerate(SHAPES):
        make(sys.argv[1], name, 11 + i)
    print("OK")


main()
