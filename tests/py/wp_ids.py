"""wp-tokenize's ids for a list of texts, for the tests that compare them
with tokenizers' (tests/cli/wp-tokenize.bats).

    from wp_ids import wp_tokenize_ids
    got = wp_tokenize_ids(["-m", MODEL], texts)   # one list of ids per text

Each text is one input line (no tab or newline in it); padding is removed."""
import io
import subprocess

import numpy as np


def wp_tokenize_ids(args, texts):
    out = subprocess.run(["wp-tokenize", *args], check=True, capture_output=True,
                         input="\n".join(texts).encode("utf-8") + b"\n").stdout
    f = io.BytesIO(out)
    got = []
    while f.tell() < len(out):
        for seq in np.load(f)[:, 0, :]:
            got.append(seq[seq >= 0].tolist())
    return got
