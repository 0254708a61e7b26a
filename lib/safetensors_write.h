/* safetensors_write.h - write .safetensors files (the reader is safetensors.h).
 *
 * The header lists the tensors in the order given, data follows in the same
 * order without gaps, and the header is padded with spaces to a multiple of 8
 * bytes, as the safetensors library writes it. */
#ifndef BP_SAFETENSORS_WRITE_H
#define BP_SAFETENSORS_WRITE_H

#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data; /* numel * st_dtype_size(dtype) bytes, little-endian */
} st_out_tensor;

/* Write n tensors to path atomically (temporary name, then rename); every
 * write checked.  metadata: a JSON object of string values as text (e.g.
 * "{\"format\":\"pt\"}"), or NULL for none. */
void st_write(const char *path, const st_out_tensor *t, int n, const char *metadata);

#endif
