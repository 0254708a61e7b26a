#!/usr/bin/env python3
"""Write pytorch_model.bin files with torch.save for tests/unit/torchbin.c and
tests/unit/model.c.

usage: torchsave.py MODEL_DIR OUT.bin      the state dict of BertModel.from_pretrained(MODEL_DIR),
                                           as transformers 4.x wrote pytorch_model.bin
       torchsave.py --dtypes OUT.bin       half, bfloat16, double, int64 and views with storage offsets
"""
import collections
import sys

import torch

if sys.argv[1] == "--dtypes":
    base = torch.arange(10, dtype=torch.float32)
    sd = collections.OrderedDict()
    sd["half"] = torch.arange(6, dtype=torch.float16).reshape(2, 3) / 4
    sd["bfloat16"] = torch.arange(6, dtype=torch.bfloat16) - 3
    sd["double"] = torch.arange(4, dtype=torch.float64) / 8
    sd["long"] = torch.arange(5, dtype=torch.int64) - 2
    sd["view"] = base[3:7].view(2, 2)   # storage offset 3 into a storage shared with...
    sd["tail"] = base[8:]               # ...this one
    torch.save(sd, sys.argv[2])
else:
    import transformers
    model = transformers.BertModel.from_pretrained(sys.argv[1])
    torch.save(model.state_dict(), sys.argv[2])
