#define _GNU_SOURCE
#include "npy.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char magic[6] = "\x93NUMPY";

void npy_reader_init(npy_reader *r, int count, char **names)
{
    memset(r, 0, sizeof *r);
    input_init(&r->in, count, names);
}

void npy_reader_init_mem(npy_reader *r, const void *buf, size_t len, const char *name)
{
    static char empty[1];
    memset(r, 0, sizeof *r);
    input_init(&r->in, 1, NULL);
    r->in.next = 1; /* no operand after this one */
    r->in.name = name;
    /* fmemopen refuses a buffer of size 0 on older C libraries: an empty
     * stream is one byte of which none is read ("r" mode reads len bytes). */
    r->in.f = fmemopen(len ? (void *)buf : empty, len ? len : 1, "r");
    if (!r->in.f)
        die("%s: %s", name, strerror(errno));
    if (!len)
        fseek(r->in.f, 0, SEEK_END);
}

void npy_frame_error(const npy_reader *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    die("%s: frame %ld at byte %llu: %s", r->in.name, r->frame,
        (unsigned long long)r->frame_offset, msg);
}

/* Read exactly n bytes; returns the number read (short only at EOF). */
static size_t read_full(npy_reader *r, void *p, size_t n)
{
    size_t got = fread(p, 1, n, r->in.f);
    r->offset += got;
    if (got < n && ferror(r->in.f))
        die("%s: read error: %s", r->in.name, strerror(errno));
    return got;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

/* Parse the header dictionary, e.g.
 * {'descr': '<i4', 'fortran_order': False, 'shape': (2, 3, 4), }
 * Keys may come in any order; each must appear once. */
static void parse_header(npy_reader *r, const char *h, npy_array *a, npy_dtype want)
{
    int have_descr = 0, have_order = 0, have_shape = 0;
    const char *p = skip_ws(h);
    if (*p++ != '{')
        npy_frame_error(r, "header is not a dictionary");
    for (;;) {
        p = skip_ws(p);
        if (*p == '}')
            break;
        if (*p != '\'')
            npy_frame_error(r, "malformed header");
        const char *key = ++p;
        while (*p && *p != '\'')
            p++;
        if (!*p)
            npy_frame_error(r, "malformed header");
        size_t klen = p - key;
        p = skip_ws(p + 1);
        if (*p++ != ':')
            npy_frame_error(r, "malformed header");
        p = skip_ws(p);
        if (klen == 5 && !strncmp(key, "descr", 5)) {
            if (have_descr++)
                npy_frame_error(r, "duplicate key 'descr'");
            const char *d = want == NPY_I4 ? "'<i4'" : "'<f4'";
            if (strncmp(p, d, 5) != 0) {
                char got[16] = {0};
                size_t i = 0;
                while (p[i] && p[i] != ',' && i < sizeof got - 1)
                    got[i] = p[i], i++;
                npy_frame_error(r, "dtype %s, expected %s", got, d);
            }
            p += 5;
        } else if (klen == 13 && !strncmp(key, "fortran_order", 13)) {
            if (have_order++)
                npy_frame_error(r, "duplicate key 'fortran_order'");
            if (!strncmp(p, "False", 5))
                p += 5;
            else if (!strncmp(p, "True", 4))
                npy_frame_error(r, "Fortran order is not supported");
            else
                npy_frame_error(r, "malformed fortran_order");
        } else if (klen == 5 && !strncmp(key, "shape", 5)) {
            if (have_shape++)
                npy_frame_error(r, "duplicate key 'shape'");
            if (*p++ != '(')
                npy_frame_error(r, "malformed shape");
            a->ndim = 0;
            for (;;) {
                p = skip_ws(p);
                if (*p == ')') {
                    p++;
                    break;
                }
                if (!isdigit((unsigned char)*p))
                    npy_frame_error(r, "malformed shape");
                char *end;
                errno = 0;
                long long v = strtoll(p, &end, 10);
                if (errno || v < 0 || v > INT32_MAX)
                    npy_frame_error(r, "shape dimension out of range");
                if (a->ndim == 3)
                    npy_frame_error(r, "shape has more than 3 dimensions");
                a->shape[a->ndim++] = v;
                p = skip_ws(end);
                if (*p == ',')
                    p++;
                else if (*p != ')')
                    npy_frame_error(r, "malformed shape");
            }
        } else {
            npy_frame_error(r, "unknown header key '%.*s'", (int)klen, key);
        }
        p = skip_ws(p);
        if (*p == ',')
            p++;
        else if (*p != '}')
            npy_frame_error(r, "malformed header");
    }
    p = skip_ws(p + 1);
    while (*p == '\n')
        p++;
    if (*p)
        npy_frame_error(r, "trailing bytes in header");
    if (!have_descr || !have_order || !have_shape)
        npy_frame_error(r, "header lacks descr, fortran_order or shape");
    if (a->ndim != 3)
        npy_frame_error(r, "shape has %d dimensions, expected 3 (rows, columns, length)", a->ndim);
    a->dtype = want;
}

int npy_read(npy_reader *r, npy_array *a, npy_dtype want)
{
    unsigned char pre[10];
    for (;;) {
        if (!r->in.f) {
            if (!input_open_next(&r->in))
                return 0;
            r->frame = 0;
            r->offset = 0;
        }
        r->frame_offset = r->offset;
        r->frame++;
        size_t got = read_full(r, pre, 1);
        if (got == 0) {
            input_close(&r->in);
            continue;
        }
        break;
    }
    if (read_full(r, pre + 1, 7) < 7)
        npy_frame_error(r, "truncated frame: incomplete NPY preamble");
    if (memcmp(pre, magic, 6) != 0)
        npy_frame_error(r, "not an NPY frame (bad magic)");
    size_t hlen;
    if (pre[6] == 1 && pre[7] == 0) {
        if (read_full(r, pre + 8, 2) < 2)
            npy_frame_error(r, "truncated frame: incomplete NPY preamble");
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if ((pre[6] == 2 || pre[6] == 3) && pre[7] == 0) {
        unsigned char l[4];
        if (read_full(r, l, 4) < 4)
            npy_frame_error(r, "truncated frame: incomplete NPY preamble");
        hlen = l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
        if (hlen > 1 << 20)
            npy_frame_error(r, "header of %zu bytes is too long", hlen);
    } else {
        npy_frame_error(r, "unsupported NPY version %d.%d", pre[6], pre[7]);
    }
    char *h = xmalloc(hlen + 1);
    die_cleanup_push(free, h);
    if (read_full(r, h, hlen) < hlen)
        npy_frame_error(r, "truncated frame: incomplete header");
    h[hlen] = 0;
    if (memchr(h, 0, hlen))
        npy_frame_error(r, "NUL byte in header");
    parse_header(r, h, a, want);
    die_cleanup_pop();
    free(h);
    uint64_t bytes;
    if (checked_size(a->shape, 3, 4, STREAM_MAX_FRAME_BYTES, NULL, &bytes) != 0)
        npy_frame_error(r, "shape (%lld, %lld, %lld) is too large (at most %llu data bytes)",
                        (long long)a->shape[0], (long long)a->shape[1], (long long)a->shape[2],
                        (unsigned long long)STREAM_MAX_FRAME_BYTES);
    /* The buffer grows with the data that arrives, so that a header claiming
     * gigabytes on a short stream costs no more than the stream; never NULL,
     * so that an empty frame's rows are pointers into an allocation. */
    if (!a->data) {
        a->data = xmalloc(64);
        a->cap = 64;
    }
    size_t got = 0;
    while (got < bytes) {
        if (a->cap < bytes && got == a->cap) {
            size_t cap = 2 * a->cap;
            if (cap < (size_t)1 << 20)
                cap = (size_t)1 << 20;
            if (cap > bytes)
                cap = bytes;
            a->data = xrealloc(a->data, cap);
            a->cap = cap;
        }
        size_t want = (a->cap < bytes ? a->cap : bytes) - got;
        size_t k = read_full(r, (char *)a->data + got, want);
        got += k;
        if (k < want)
            npy_frame_error(r, "truncated frame: %zu of %llu data bytes", got,
                            (unsigned long long)bytes);
    }
    return 1;
}

void npy_write(FILE *f, const char *name, npy_dtype dtype, int ndim, const int64_t *shape,
               const void *data)
{
    char h[256];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == NPY_I4 ? "<i4" : "<f4");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(h + n, sizeof h - n, i ? ", %lld" : "%lld", (long long)shape[i]);
        count *= shape[i];
    }
    n += snprintf(h + n, sizeof h - n, ndim == 1 ? ",), }" : "), }");
    /* Pad with spaces so that data starts on a 64-byte boundary, as numpy does. */
    size_t total = 10 + n + 1;
    size_t padded = (total + 63) / 64 * 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hlen = padded - 10;
    pre[8] = hlen & 0xff;
    pre[9] = hlen >> 8;
    memset(h + n, ' ', padded - total);
    h[hlen - 1] = '\n';
    out_write(f, name, pre, 10);
    out_write(f, name, h, hlen);
    out_write(f, name, data, count * 4);
}

void tokens_check(const npy_reader *r, const npy_array *a, int32_t max_id, int32_t *lens)
{
    const int32_t *ids = a->data;
    int64_t nseq = a->shape[0] * a->shape[1], len = a->shape[2];
    for (int64_t s = 0; s < nseq; s++) {
        const int32_t *q = ids + s * len;
        int64_t n = 0;
        while (n < len && q[n] >= 0) {
            if (max_id && q[n] >= max_id)
                npy_frame_error(r, "row %lld column %lld: token id %d outside the vocabulary (%d)",
                                (long long)(s / a->shape[1]), (long long)(s % a->shape[1]), q[n],
                                max_id);
            n++;
        }
        for (int64_t i = n; i < len; i++)
            if (q[i] != -1)
                npy_frame_error(r, "row %lld column %lld: value %d at position %lld: expected "
                                "token ids then -1 padding",
                                (long long)(s / a->shape[1]), (long long)(s % a->shape[1]), q[i],
                                (long long)i);
        if (lens)
            lens[s] = (int32_t)n;
    }
}

void npy_free(npy_array *a)
{
    free(a->data);
    a->data = NULL;
    a->cap = 0;
}
