/* torchbin.h - read PyTorch state dicts saved by torch.save (torch >= 1.6:
 * a zip archive holding data.pkl and one stored entry per storage, as
 * pytorch_model.bin files are).
 *
 * data.pkl is run by a small pickle interpreter that knows exactly what a
 * state dict needs: an OrderedDict (with its _metadata state) mapping names to
 * tensors rebuilt by torch._utils._rebuild_tensor_v2 from typed storages.  Any
 * other opcode or global is an error, so no code from the file ever runs.
 * Tensors must be contiguous (a storage offset is fine); entries must be
 * stored, not compressed.  The archive is memory-mapped and each tensor
 * points into it. */
#ifndef BP_TORCHBIN_H
#define BP_TORCHBIN_H

#include "safetensors.h"

/* Open and validate into the same view a .safetensors file gives (no
 * metadata), so that st_find, st_to_f32 and st_close apply; any problem is
 * fatal: "tool: PATH: what is wrong" (naming the tensor where one is
 * concerned).  Tensors come in the order of the state dict. */
void tb_open(safetensors *st, const char *path);
/* The same on the file's bytes buf[0..size) (not copied; they must outlive
 * st), named path in messages.  st_close does not free buf. */
void tb_parse(safetensors *st, const char *path, const void *buf, size_t size);

#endif
