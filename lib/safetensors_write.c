#include "safetensors_write.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void st_write(const char *path, const st_out_tensor *t, int n, const char *metadata)
{
    json_t *header = json_object();
    if (metadata) {
        json_error_t jerr;
        json_t *meta = json_loads(metadata, 0, &jerr);
        if (!json_is_object(meta))
            die("%s: safetensors metadata is not a JSON object", path);
        json_object_set_new(header, "__metadata__", meta);
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++) {
            json_array_append_new(shape, json_integer(t[i].shape[d]));
            numel *= t[i].shape[d];
        }
        size_t nbytes = numel * st_dtype_size(t[i].dtype);
        if (json_object_get(header, t[i].name))
            die("%s: tensor %s written twice", path, t[i].name);
        json_object_set_new(header, t[i].name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_name(t[i].dtype), "shape",
                                      shape, "data_offsets", (json_int_t)offset,
                                      (json_int_t)(offset + nbytes)));
        offset += nbytes;
    }
    char *text = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(header);
    if (!text)
        die("out of memory");
    /* Pad the header with spaces so that the data starts 8-byte aligned. */
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint64_t)padded >> (8 * i) & 0xff;

    atomic_file a;
    atomic_open(&a, path);
    out_write(a.f, path, len8, 8);
    out_write(a.f, path, text, hlen);
    out_write(a.f, path, "        ", padded - hlen);
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= t[i].shape[d];
        out_write(a.f, path, t[i].data, numel * st_dtype_size(t[i].dtype));
    }
    atomic_commit(&a);
    free(text);
}
