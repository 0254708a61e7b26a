#include "safetensors.h"
#include "gemm.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I32", ST_I32, 4}, {"I64", ST_I64, 8}, {"I8", ST_I8, 1},     {"U8", ST_U8, 1},
    {"BOOL", ST_BOOL, 1},
};

size_t st_dtype_size(st_dtype d)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dtype == d)
            return dtypes[i].size;
    return 0;
}

const char *st_dtype_name(st_dtype d)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dtype == d)
            return dtypes[i].name;
    return "?";
}

/* Order of data_offsets, for the coverage check. */
static int by_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    const unsigned char *xb = x->data, *yb = y->data;
    if (xb != yb)
        return xb < yb ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* What st_parse holds while it validates, released when it dies. */
typedef struct {
    safetensors *st;
    json_t *root;
    const st_tensor **order;
} st_parsing;

static void st_parse_cleanup(void *arg)
{
    st_parsing *p = arg;
    json_decref(p->root);
    free(p->order);
    st_close(p->st);
}

void st_parse(safetensors *st, const char *path, const void *buf, size_t size)
{
    memset(st, 0, sizeof *st);
    st_parsing parsing = {.st = st};
    die_cleanup_push(st_parse_cleanup, &parsing);
    st->path = xstrdup(path);
    st->size = size;
    if (size < 8)
        die("%s: truncated safetensors file (%zu bytes)", path, size);
    const unsigned char *b = buf;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    /* As the reference library (safetensors 0.4): at most 100 MB of header,
     * which starts with '{', then the data, every byte of it some tensor's. */
    if (hlen > ST_MAX_HEADER_BYTES)
        die("%s: header of %llu bytes is too large (at most %d)", path, (unsigned long long)hlen,
            ST_MAX_HEADER_BYTES);
    if (hlen > size - 8)
        die("%s: truncated safetensors file: header of %llu bytes in a file of %zu", path,
            (unsigned long long)hlen, size);
    if (hlen == 0 || b[8] != '{')
        die("%s: malformed safetensors header: does not start with '{'", path);
    json_error_t jerr;
    json_t *root = parsing.root = json_loadb((const char *)b + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root))
        die("%s: malformed safetensors header: %s", path, root ? "not an object" : jerr.text);
    size_t data_start = 8 + hlen, data_size = size - data_start;
    st->tensors = xcalloc(json_object_size(root), sizeof *st->tensors);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(val))
                die("%s: __metadata__ is not an object", path);
            json_object_foreach(val, mk, mv)
                if (!json_is_string(mv))
                    die("%s: __metadata__: value of %s is not a string", path, mk);
            st->metadata_json = json_dumps(val, JSON_COMPACT);
            continue;
        }
        st_tensor *t = &st->tensors[st->count];
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2)
            die("%s: tensor %s: malformed header entry", path, key);
        size_t esize = 0;
        for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
            if (!strcmp(json_string_value(jd), dtypes[i].name)) {
                t->dtype = dtypes[i].dtype;
                esize = dtypes[i].size;
            }
        if (!esize)
            die("%s: tensor %s: unsupported dtype %s", path, key, json_string_value(jd));
        if (json_array_size(js) > 8)
            die("%s: tensor %s: too many dimensions", path, key);
        t->ndim = json_array_size(js);
        for (int i = 0; i < t->ndim; i++) {
            json_t *d = json_array_get(js, i);
            if (!json_is_integer(d) || json_integer_value(d) < 0)
                die("%s: tensor %s: bad shape", path, key);
            t->shape[i] = json_integer_value(d);
        }
        uint64_t numel, nbytes;
        if (checked_size(t->shape, t->ndim, esize, data_size, &numel, &nbytes) != 0)
            die("%s: tensor %s: shape larger than the file's %zu data bytes", path, key, data_size);
        json_t *o0 = json_array_get(jo, 0), *o1 = json_array_get(jo, 1);
        if (!json_is_integer(o0) || !json_is_integer(o1))
            die("%s: tensor %s: bad data_offsets", path, key);
        json_int_t begin = json_integer_value(o0), end = json_integer_value(o1);
        if (begin < 0 || end < begin)
            die("%s: tensor %s: bad data_offsets", path, key);
        if ((uint64_t)end > data_size)
            die("%s: truncated safetensors file: tensor %s ends at byte %llu of %zu", path, key,
                (unsigned long long)data_start + (uint64_t)end, size);
        t->nbytes = end - begin;
        t->numel = numel;
        if (t->nbytes != nbytes)
            die("%s: tensor %s: %zu data bytes for shape of %zu %s elements", path, key, t->nbytes,
                t->numel, json_string_value(jd));
        t->data = b + data_start + begin;
        t->name = xstrdup(key);
        st->count++;
    }
    json_decref(root);
    parsing.root = NULL;
    /* The tensors in order of their offsets tile the data exactly: no gap,
     * no overlap, nothing after the last. */
    const st_tensor **order = parsing.order = xmallocarray(st->count ? st->count : 1, sizeof *order);
    for (int i = 0; i < st->count; i++)
        order[i] = &st->tensors[i];
    qsort(order, st->count, sizeof *order, by_offset);
    size_t pos = 0;
    for (int i = 0; i < st->count; i++) {
        size_t begin = (const unsigned char *)order[i]->data - (b + data_start);
        if (begin != pos) {
            const char *name = order[i]->name, *prev = i ? order[i - 1]->name : "";
            if (begin < pos)
                die("%s: tensor %s: data_offsets overlap tensor %s's", path, name, prev);
            die("%s: tensor %s: data starts at offset %zu, after %zu unreferenced bytes", path,
                name, begin, begin - pos);
        }
        pos = begin + order[i]->nbytes;
    }
    if (pos != data_size)
        die("%s: %zu unreferenced bytes after the last tensor's data (offset %zu)", path,
            data_size - pos, pos);
    die_cleanup_pop();
    free(order);
}

void st_open(safetensors *st, const char *path)
{
    size_t size;
    void *map = map_file(path, &size);
    /* (unmapped if the file is refused, for callers that go on: the fuzzer) */
    file_map fm = {map, size};
    die_cleanup_push(file_map_release, &fm);
    st_parse(st, path, map ? map : "", size);
    die_cleanup_pop();
    st->map = map;
}

void st_close(safetensors *st)
{
    for (int i = 0; i < st->count; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    free(st->metadata_json);
    free(st->path);
    if (st->map && st->map != MAP_FAILED)
        munmap(st->map, st->size);
    memset(st, 0, sizeof *st);
}

const st_tensor *st_find(const safetensors *st, const char *name)
{
    for (int i = 0; i < st->count; i++)
        if (!strcmp(st->tensors[i].name, name))
            return &st->tensors[i];
    return NULL;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | exp << 23 | (mant & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | mant << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static double element(const st_tensor *t, size_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + i * st_dtype_size(t->dtype);
    switch (t->dtype) {
    case ST_F32: { float f; memcpy(&f, p, 4); return f; }
    case ST_F64: { double d; memcpy(&d, p, 8); return d; }
    case ST_F16: { uint16_t h; memcpy(&h, p, 2); return half_to_float(h); }
    case ST_BF16: { bf16 h; memcpy(&h, p, 2); return bf16_to_float(h); }
    case ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case ST_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case ST_I8: return (int8_t)*p;
    case ST_U8: case ST_BOOL: return *p;
    }
    return 0;
}

void st_to_f32(const st_tensor *t, float *dst)
{
    st_to_f32_part(t, 0, t->numel, dst);
}

void st_to_f32_part(const st_tensor *t, size_t first, size_t count, float *dst)
{
    if (t->dtype == ST_F32) {
        memcpy(dst, (const float *)t->data + first, count * sizeof *dst);
        return;
    }
    for (size_t i = 0; i < count; i++)
        dst[i] = (float)element(t, first + i);
}

void st_to_f64(const st_tensor *t, double *dst)
{
    for (size_t i = 0; i < t->numel; i++)
        dst[i] = element(t, i);
}

char *st_metadata(const safetensors *st, const char *key)
{
    if (!st->metadata_json)
        return NULL;
    json_t *m = json_loads(st->metadata_json, 0, NULL);
    json_t *v = m ? json_object_get(m, key) : NULL;
    char *s = json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
    json_decref(m);
    return s;
}
