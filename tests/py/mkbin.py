#!/usr/bin/env python3
"""Write a PyTorch state-dict archive (pytorch_model.bin, torch >= 1.6 zip
format) from a .safetensors file without torch, for testing lib/torchbin.c
where torch is not installed.

The pickle has the opcode structure torch.save gives a module's state_dict():
an OrderedDict of tensors rebuilt by torch._utils._rebuild_tensor_v2 from
persistent storage references, with the OrderedDict's _metadata attribute set
through BUILD.  The globals are stand-ins registered under torch's names, so
the pickler writes them exactly as torch would; torch itself is never imported.
The tensors of each encoder layer share one storage, at increasing offsets, to
exercise storage offsets.

usage: mkbin.py IN.safetensors OUT.bin [VARIANT]
VARIANT (broken archives for the rejection tests):
  compressed   data.pkl deflated instead of stored
  global       an os.system call in the pickle
  noncontig    one 2-D tensor with transposed strides
  opcode       a pickle opcode outside the state-dict subset (a list)
  legacy       not a zip archive (the pre-1.6 format starts with a pickle)
  short        storage 0 claims one element more than its entry holds
"""
import collections
import json
import os
import pickle
import struct
import sys
import types
import zipfile


def stand_in(module, name, obj):
    """Register obj as module.name so that pickle writes GLOBAL 'module name'."""
    mod = sys.modules.get(module)
    if mod is None:
        mod = sys.modules[module] = types.ModuleType(module)
    obj.__module__ = module
    obj.__qualname__ = name
    obj.__name__ = name
    setattr(mod, name, obj)
    return obj


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in, never called")


stand_in("torch._utils", "_rebuild_tensor_v2", _rebuild_tensor_v2)
FloatStorage = stand_in("torch", "FloatStorage", type("FloatStorage", (), {}))
sys.modules["torch"]._utils = sys.modules["torch._utils"]


class Storage:
    def __init__(self, key):
        self.key, self.data = key, bytearray()


class Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def __reduce__(self):
        return (_rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.shape), tuple(self.stride), False,
                 collections.OrderedDict()))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


class Pickler(pickle.Pickler):
    extra = 0  # elements claimed beyond storage 0's data

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            numel = len(obj.data) // 4 + (self.extra if obj.key == "0" else 0)
            return ("storage", FloatStorage, obj.key, "cpu", numel)
        return None


def contiguous_strides(shape):
    strides, n = [], 1
    for d in reversed(shape):
        strides.insert(0, n)
        n *= d
    return strides


def main():
    src, out = sys.argv[1], sys.argv[2]
    variant = sys.argv[3] if len(sys.argv) > 3 else ""
    raw = open(src, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    header.pop("__metadata__", None)

    storages, state = {}, collections.OrderedDict()
    for name, info in header.items():
        if info["dtype"] != "F32":
            sys.exit("mkbin.py: only F32 tensors")
        begin, end = info["data_offsets"]
        data = raw[8 + hlen + begin:8 + hlen + end]
        # One storage per encoder layer, one per other tensor.
        group = ".".join(name.split(".")[:3]) if ".layer." in name else name
        if group not in storages:
            storages[group] = Storage(str(len(storages)))
        st = storages[group]
        shape = info["shape"]
        strides = contiguous_strides(shape)
        if variant == "noncontig" and len(shape) == 2 and shape[0] == shape[1] and "noncontig" not in state:
            strides = strides[::-1]
        state[name] = Tensor(st, len(st.data) // 4, shape, strides)
        st.data += data
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    if variant == "global":
        state["evil"] = Evil()
    if variant == "opcode":
        state["list"] = [1, 2]

    import io
    buf = io.BytesIO()
    pickler = Pickler(buf, protocol=2)
    pickler.extra = 1 if variant == "short" else 0
    pickler.dump(state)
    if variant == "legacy":
        open(out, "wb").write(buf.getvalue())
        return
    method = zipfile.ZIP_DEFLATED if variant == "compressed" else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue(), compress_type=method)
        z.writestr("archive/byteorder", "little")
        for st in storages.values():
            z.writestr("archive/data/" + st.key, bytes(st.data))
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main()
