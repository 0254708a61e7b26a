/* safetensors.h - read .safetensors files (memory-mapped), validating the
 * header against the file; tensors are upcast to float on request. */
#ifndef BP_SAFETENSORS_H
#define BP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I32, ST_I64, ST_I8, ST_U8, ST_BOOL } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    const void *data;
    size_t nbytes;
} st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t size;
    int count;
    st_tensor *tensors;
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL */
} safetensors;

/* Largest header accepted, as the reference library's. */
#define ST_MAX_HEADER_BYTES 100000000

/* Open and validate; any problem is fatal: "tool: PATH: what is wrong".
 * Valid means what the reference library (safetensors) accepts: a header of
 * at most ST_MAX_HEADER_BYTES that is a JSON object without duplicate keys,
 * string-valued __metadata__, known dtypes, data_offsets that match each
 * shape and, in order, cover the data exactly: no gap, no overlap, no
 * trailing bytes. */
void st_open(safetensors *st, const char *path);
/* The same on the file's bytes buf[0..size) (not copied; they must outlive
 * st), named path in messages.  st_close does not free buf. */
void st_parse(safetensors *st, const char *path, const void *buf, size_t size);
void st_close(safetensors *st);
/* NULL when absent. */
const st_tensor *st_find(const safetensors *st, const char *name);
/* Element size in bytes. */
size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);
/* Convert a floating-point (or int32) tensor to float / double. */
void st_to_f32(const st_tensor *t, float *dst);
/* Elements first .. first + count - 1 of t (within it) into dst[0 .. count). */
void st_to_f32_part(const st_tensor *t, size_t first, size_t count, float *dst);
void st_to_f64(const st_tensor *t, double *dst);
/* Metadata value for key, or NULL (string owned by the caller). */
char *st_metadata(const safetensors *st, const char *key);

#endif
