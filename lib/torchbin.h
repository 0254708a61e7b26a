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
 * points into it, so the st_tensor helpers of safetensors.h (st_to_f32) apply. */
#ifndef BP_TORCHBIN_H
#define BP_TORCHBIN_H

#include "safetensors.h"

typedef struct {
    char *path;
    void *map;
    size_t size;
    int count;
    st_tensor *tensors; /* in the order of the state dict */
} torchbin;

/* Open and validate; any problem is fatal: "tool: PATH: what is wrong"
 * (naming the tensor where one is concerned). */
void tb_open(torchbin *tb, const char *path);
void tb_close(torchbin *tb);
/* NULL when absent. */
const st_tensor *tb_find(const torchbin *tb, const char *name);

#endif
