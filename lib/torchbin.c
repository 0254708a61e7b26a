#define _GNU_SOURCE
#include "torchbin.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* ---- zip archive: the central directory, stored entries only ---- */

typedef struct {
    char *name;
    const unsigned char *data;
    size_t size;
} zip_entry;

typedef struct {
    const char *path;
    const unsigned char *b;
    size_t size;
    int count;
    zip_entry *entries;
} zip_archive;

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Pointer to n bytes at offset off, or death naming what was being read. */
static const unsigned char *zip_at(const zip_archive *z, uint64_t off, uint64_t n, const char *what)
{
    if (off > z->size || n > z->size - off)
        die("%s: truncated or corrupt zip archive: %s beyond the end of the file", z->path, what);
    return z->b + off;
}

static void zip_read_directory(zip_archive *z)
{
    if (z->size < 22)
        die("%s: not a zip archive (%zu bytes)", z->path, z->size);
    /* The end-of-central-directory record: last in the file, before a comment
     * of at most 65535 bytes. */
    size_t eocd = 0;
    int found = 0;
    for (size_t pos = z->size - 22;; pos--) {
        if (le(z->b + pos, 4) == 0x06054b50) {
            eocd = pos;
            found = 1;
            break;
        }
        if (pos == 0 || z->size - 22 - pos >= 65535)
            break;
    }
    if (!found)
        die("%s: not a zip archive (no end of central directory)", z->path);
    const unsigned char *e = z->b + eocd;
    uint64_t count = le(e + 10, 2), cd_size = le(e + 12, 4), cd_off = le(e + 16, 4);
    if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
        /* zip64: the locator just before the record points to the zip64 record. */
        if (eocd < 20 || le(z->b + eocd - 20, 4) != 0x07064b50)
            die("%s: corrupt zip64 archive: no zip64 locator", z->path);
        uint64_t off64 = le(z->b + eocd - 20 + 8, 8);
        const unsigned char *e64 = zip_at(z, off64, 56, "zip64 end of central directory");
        if (le(e64, 4) != 0x06064b50)
            die("%s: corrupt zip64 archive: bad zip64 end of central directory", z->path);
        count = le(e64 + 32, 8);
        cd_size = le(e64 + 40, 8);
        cd_off = le(e64 + 48, 8);
    }
    zip_at(z, cd_off, cd_size, "central directory");
    if (count > cd_size / 46)
        die("%s: corrupt zip archive: %llu entries in a central directory of %llu bytes", z->path,
            (unsigned long long)count, (unsigned long long)cd_size);
    z->entries = xcalloc(count, sizeof *z->entries);
    uint64_t pos = cd_off;
    for (uint64_t i = 0; i < count; i++) {
        const unsigned char *c = zip_at(z, pos, 46, "central directory entry");
        if (le(c, 4) != 0x02014b50)
            die("%s: corrupt zip archive: bad central directory entry %llu", z->path,
                (unsigned long long)i);
        uint64_t flags = le(c + 8, 2), method = le(c + 10, 2), csize = le(c + 20, 4),
                 usize = le(c + 24, 4), nlen = le(c + 28, 2), xlen = le(c + 30, 2),
                 clen = le(c + 32, 2), local = le(c + 42, 4);
        const unsigned char *name = zip_at(z, pos + 46, nlen + xlen + clen, "central directory entry");
        zip_entry *ze = &z->entries[z->count++];
        ze->name = xmalloc(nlen + 1);
        memcpy(ze->name, name, nlen);
        ze->name[nlen] = 0;
        if (strlen(ze->name) != nlen)
            die("%s: corrupt zip archive: entry name with a NUL byte", z->path);
        /* zip64 extended information: the 8-byte values of the fields set to
         * 0xffffffff, in this order. */
        for (const unsigned char *x = name + nlen, *xend = name + nlen + xlen; x + 4 <= xend;) {
            uint64_t id = le(x, 2), len = le(x + 2, 2);
            if (x + 4 + len > xend)
                die("%s: %s: corrupt zip extra field", z->path, ze->name);
            if (id == 1) {
                const unsigned char *f = x + 4, *fend = x + 4 + len;
                uint64_t *fields[3] = {&usize, &csize, &local};
                for (int k = 0; k < 3; k++)
                    if (*fields[k] == 0xffffffff) {
                        if (f + 8 > fend)
                            die("%s: %s: corrupt zip64 extra field", z->path, ze->name);
                        *fields[k] = le(f, 8);
                        f += 8;
                    }
            }
            x += 4 + len;
        }
        if (flags & 1)
            die("%s: %s: encrypted zip entries are not supported", z->path, ze->name);
        if (method != 0)
            die("%s: %s: compressed zip entry (method %llu); only stored entries are supported",
                z->path, ze->name, (unsigned long long)method);
        if (csize != usize)
            die("%s: %s: corrupt zip entry: stored size %llu differs from size %llu", z->path,
                ze->name, (unsigned long long)csize, (unsigned long long)usize);
        const unsigned char *lh = zip_at(z, local, 30, ze->name);
        if (le(lh, 4) != 0x04034b50)
            die("%s: %s: corrupt zip archive: bad local header", z->path, ze->name);
        ze->data = zip_at(z, local + 30 + le(lh + 26, 2) + le(lh + 28, 2), usize, ze->name);
        ze->size = usize;
        pos += 46 + nlen + xlen + clen;
    }
}

static const zip_entry *zip_find(const zip_archive *z, const char *name)
{
    for (int i = 0; i < z->count; i++)
        if (!strcmp(z->entries[i].name, name))
            return &z->entries[i];
    return NULL;
}

/* ---- the pickle subset ---- */

typedef enum { V_MARK, V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;
/* The callables and classes a state dict refers to. */
typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR, G_STORAGE } gkind;

typedef struct value value;
struct value {
    vkind kind;
    int64_t i;           /* BOOL, INT; GLOBAL: its gkind; STORAGE: element count;
                          * TENSOR: storage offset */
    char *s;             /* STR; STORAGE: its key in the archive */
    int n, cap;
    value **items;       /* TUPLE: n items; DICT: n keys and values, interleaved;
                          * TENSOR: storage, size tuple, stride tuple */
    st_dtype dtype;      /* GLOBAL (G_STORAGE), STORAGE */
    const unsigned char *data; /* STORAGE */
};

typedef struct {
    const char *path;
    const zip_archive *zip;
    const char *prefix; /* of the archive's entries: "archive/" */
    const unsigned char *p, *start, *end;
    value **stack;
    int sp, stack_cap;
    value **memo;
    size_t memo_cap, memo_len;
    value **all; /* every value made, freed at the end */
    size_t nall, all_cap;
} unpickler;

static value mark_value = {.kind = V_MARK};

__attribute__((noreturn, format(printf, 2, 3))) static void pk_die(unpickler *u, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    die("%s: %sdata.pkl at byte %ld: %s", u->path, u->prefix, (long)(u->p - u->start), msg);
}

static value *new_value(unpickler *u, vkind kind)
{
    if (u->nall == u->all_cap)
        u->all = xrealloc(u->all, (u->all_cap = u->all_cap ? 2 * u->all_cap : 256) * sizeof *u->all);
    value *v = xcalloc(1, sizeof *v);
    v->kind = kind;
    u->all[u->nall++] = v;
    return v;
}

static void push(unpickler *u, value *v)
{
    if (u->sp == u->stack_cap)
        u->stack = xrealloc(u->stack, (u->stack_cap = u->stack_cap ? 2 * u->stack_cap : 64) * sizeof *u->stack);
    u->stack[u->sp++] = v;
}

static value *pop(unpickler *u)
{
    if (u->sp == 0 || u->stack[u->sp - 1] == &mark_value)
        pk_die(u, "stack underflow");
    return u->stack[--u->sp];
}

static value *top(unpickler *u)
{
    if (u->sp == 0 || u->stack[u->sp - 1] == &mark_value)
        pk_die(u, "stack underflow");
    return u->stack[u->sp - 1];
}

/* Index of the topmost mark. */
static int find_mark(unpickler *u)
{
    for (int i = u->sp - 1; i >= 0; i--)
        if (u->stack[i] == &mark_value)
            return i;
    pk_die(u, "no mark on the stack");
}

static const unsigned char *take(unpickler *u, size_t n)
{
    if ((size_t)(u->end - u->p) < n)
        pk_die(u, "truncated pickle");
    const unsigned char *q = u->p;
    u->p += n;
    return q;
}

static value *make_string(unpickler *u, size_t n)
{
    const unsigned char *s = take(u, n);
    if (memchr(s, 0, n))
        pk_die(u, "string with a NUL character");
    value *v = new_value(u, V_STR);
    v->s = xmalloc(n + 1);
    memcpy(v->s, s, n);
    v->s[n] = 0;
    return v;
}

static value *make_int(unpickler *u, int64_t i)
{
    value *v = new_value(u, V_INT);
    v->i = i;
    return v;
}

static value *make_tuple(unpickler *u, int from)
{
    value *t = new_value(u, V_TUPLE);
    t->n = u->sp - from;
    t->items = xmallocarray(t->n ? t->n : 1, sizeof *t->items);
    if (t->n) /* an empty stack may not have been allocated yet */
        memcpy(t->items, u->stack + from, t->n * sizeof *t->items);
    u->sp = from;
    return t;
}

static void dict_set(unpickler *u, value *d, value *k, value *v)
{
    if (d->kind != V_DICT)
        pk_die(u, "item assignment to something that is not a dict");
    if (k->kind == V_STR)
        for (int i = 0; i < d->n; i++)
            if (d->items[2 * i]->kind == V_STR && !strcmp(d->items[2 * i]->s, k->s)) {
                d->items[2 * i + 1] = v;
                return;
            }
    if (d->n == d->cap)
        d->items = xrealloc(d->items, (d->cap = d->cap ? 2 * d->cap : 16) * 2 * sizeof *d->items);
    d->items[2 * d->n] = k;
    d->items[2 * d->n + 1] = v;
    d->n++;
}

static const struct {
    const char *name;
    st_dtype dtype;
} storages[] = {
    {"FloatStorage", ST_F32}, {"HalfStorage", ST_F16}, {"BFloat16Storage", ST_BF16},
    {"DoubleStorage", ST_F64}, {"LongStorage", ST_I64}, {"IntStorage", ST_I32},
    {"CharStorage", ST_I8},    {"ByteStorage", ST_U8},  {"BoolStorage", ST_BOOL},
};

static value *make_global(unpickler *u, const char *module, const char *name)
{
    value *g = new_value(u, V_GLOBAL);
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict")) {
        g->i = G_ORDERED_DICT;
        return g;
    }
    if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) {
        g->i = G_REBUILD_TENSOR;
        return g;
    }
    if (!strcmp(module, "torch"))
        for (size_t i = 0; i < sizeof storages / sizeof *storages; i++)
            if (!strcmp(name, storages[i].name)) {
                g->i = G_STORAGE;
                g->dtype = storages[i].dtype;
                return g;
            }
    pk_die(u, "global %s.%s is not allowed (only state dicts of tensors are read)", module, name);
}

static char *read_line(unpickler *u)
{
    const unsigned char *nl = memchr(u->p, '\n', u->end - u->p);
    if (!nl)
        pk_die(u, "truncated pickle");
    size_t n = nl - u->p;
    value *v = make_string(u, n);
    u->p++;
    return v->s;
}

/* BINPERSID: ('storage', storage class, key, location, element count). */
static value *load_storage(unpickler *u, value *pid)
{
    if (pid->kind != V_TUPLE || pid->n != 5 || pid->items[0]->kind != V_STR ||
        strcmp(pid->items[0]->s, "storage") || pid->items[1]->kind != V_GLOBAL ||
        pid->items[1]->i != G_STORAGE || pid->items[2]->kind != V_STR || pid->items[4]->kind != V_INT ||
        pid->items[4]->i < 0)
        pk_die(u, "persistent id is not a storage reference");
    value *s = new_value(u, V_STORAGE);
    s->dtype = pid->items[1]->dtype;
    s->i = pid->items[4]->i;
    char *name;
    if (asprintf(&name, "%sdata/%s", u->prefix, pid->items[2]->s) < 0)
        die("out of memory");
    const zip_entry *e = zip_find(u->zip, name);
    value *n = new_value(u, V_STR); /* so that name is freed with the values */
    n->s = name;
    if (!e)
        pk_die(u, "storage %s: no entry %s in the archive", pid->items[2]->s, name);
    size_t esize = st_dtype_size(s->dtype);
    if ((uint64_t)s->i > e->size / esize)
        pk_die(u, "storage %s: %llu elements of %zu bytes in an entry of %zu bytes", pid->items[2]->s,
               (unsigned long long)s->i, esize, e->size);
    s->data = e->data;
    return s;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]); checked by tensor_view once its name is known. */
static value *rebuild_tensor(unpickler *u, value *args)
{
    if (args->kind != V_TUPLE || args->n < 6 || args->n > 7)
        pk_die(u, "_rebuild_tensor_v2 with %d arguments", args->n);
    value *storage = args->items[0], *offset = args->items[1], *size = args->items[2],
          *stride = args->items[3];
    if (storage->kind != V_STORAGE || offset->kind != V_INT || size->kind != V_TUPLE ||
        stride->kind != V_TUPLE || size->n != stride->n || args->items[4]->kind != V_BOOL ||
        args->items[5]->kind != V_DICT)
        pk_die(u, "malformed _rebuild_tensor_v2 arguments");
    if (size->n > 8)
        pk_die(u, "tensor of %d dimensions", size->n);
    for (int d = 0; d < size->n; d++)
        if (size->items[d]->kind != V_INT || stride->items[d]->kind != V_INT)
            pk_die(u, "malformed tensor size or stride");
    value *t = new_value(u, V_TENSOR);
    t->n = 3;
    t->items = xmallocarray(3, sizeof *t->items);
    t->items[0] = storage;
    t->items[1] = size;
    t->items[2] = stride;
    t->i = offset->i;
    return t;
}

/* The tensor as a contiguous block of its storage, or death naming it. */
static void tensor_view(const char *path, const char *name, const value *v, st_tensor *t)
{
    const value *storage = v->items[0], *size = v->items[1], *stride = v->items[2];
    t->name = xstrdup(name);
    t->dtype = storage->dtype;
    t->ndim = size->n;
    size_t esize = st_dtype_size(t->dtype);
    for (int d = 0; d < size->n; d++) {
        t->shape[d] = size->items[d]->i;
        if (t->shape[d] < 0)
            die("%s: tensor %s: bad size %lld", path, name, (long long)t->shape[d]);
    }
    uint64_t numel;
    if (checked_size(t->shape, t->ndim, esize, UINT64_MAX, &numel, NULL) != 0)
        die("%s: tensor %s: too large", path, name);
    /* Contiguous: each stride the product of the sizes after it (torch
     * calls a tensor contiguous whatever the strides of size-1 dimensions). */
    for (int d = size->n - 1; d >= 0; d--) {
        int64_t st = stride->items[d]->i;
        uint64_t inner;
        if (t->shape[d] != 1 &&
            (checked_size(t->shape + d + 1, t->ndim - d - 1, 1, UINT64_MAX, &inner, NULL) != 0 ||
             (uint64_t)st != inner))
            die("%s: tensor %s: not contiguous (stride %lld in dimension %d); only contiguous tensors are supported",
                path, name, (long long)st, d);
    }
    if (v->i < 0 || (uint64_t)v->i > (uint64_t)storage->i || numel > (uint64_t)storage->i - v->i)
        die("%s: tensor %s: %llu elements at offset %lld in a storage of %lld", path, name,
            (unsigned long long)numel, (long long)v->i, (long long)storage->i);
    t->numel = numel;
    t->data = storage->data + v->i * esize;
    t->nbytes = numel * esize;
}

static value *unpickle(unpickler *u)
{
    for (;;) {
        int op = *take(u, 1);
        switch (op) {
        case 0x80: /* PROTO */
            if (*take(u, 1) > 5)
                pk_die(u, "unsupported pickle protocol");
            break;
        case 0x95: /* FRAME: a length prefix we need not act on */
            take(u, 8);
            break;
        case 'c': { /* GLOBAL */
            char *module = read_line(u), *name = read_line(u);
            push(u, make_global(u, module, name));
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            value *name = pop(u), *module = pop(u);
            if (name->kind != V_STR || module->kind != V_STR)
                pk_die(u, "STACK_GLOBAL needs two strings");
            push(u, make_global(u, module->s, name->s));
            break;
        }
        case '}': /* EMPTY_DICT */
            push(u, new_value(u, V_DICT));
            break;
        case ')': /* EMPTY_TUPLE */
            push(u, make_tuple(u, u->sp));
            break;
        case '(': /* MARK */
            push(u, &mark_value);
            break;
        case 'X': /* BINUNICODE */
            push(u, make_string(u, le(take(u, 4), 4)));
            break;
        case 0x8c: /* SHORT_BINUNICODE */
            push(u, make_string(u, *take(u, 1)));
            break;
        case 'Q': /* BINPERSID */
            push(u, load_storage(u, pop(u)));
            break;
        case 't': { /* TUPLE */
            int m = find_mark(u);
            value *t = make_tuple(u, m + 1);
            u->sp = m;
            push(u, t);
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            int n = op - 0x84;
            if (u->sp < n)
                pk_die(u, "stack underflow");
            for (int i = 0; i < n; i++)
                if (u->stack[u->sp - 1 - i] == &mark_value)
                    pk_die(u, "stack underflow");
            push(u, make_tuple(u, u->sp - n));
            break;
        }
        case 'J': /* BININT */
            push(u, make_int(u, (int32_t)le(take(u, 4), 4)));
            break;
        case 'K': /* BININT1 */
            push(u, make_int(u, *take(u, 1)));
            break;
        case 'M': /* BININT2 */
            push(u, make_int(u, le(take(u, 2), 2)));
            break;
        case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
            int n = *take(u, 1);
            if (n > 8)
                pk_die(u, "integer too large");
            const unsigned char *b = take(u, n);
            uint64_t v = n ? le(b, n) : 0;
            if (n && n < 8 && (b[n - 1] & 0x80))
                v |= ~(uint64_t)0 << (8 * n);
            push(u, make_int(u, (int64_t)v));
            break;
        }
        case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
            value *b = new_value(u, V_BOOL);
            b->i = op == 0x88;
            push(u, b);
            break;
        }
        case 'N': /* NONE */
            push(u, new_value(u, V_NONE));
            break;
        case 's': { /* SETITEM */
            value *v = pop(u), *k = pop(u);
            dict_set(u, top(u), k, v);
            break;
        }
        case 'u': { /* SETITEMS */
            int m = find_mark(u);
            if ((u->sp - m - 1) % 2 || m == 0)
                pk_die(u, "malformed SETITEMS");
            value *d = u->stack[m - 1];
            for (int i = m + 1; i < u->sp; i += 2)
                dict_set(u, d, u->stack[i], u->stack[i + 1]);
            u->sp = m;
            break;
        }
        case 'R': { /* REDUCE */
            value *args = pop(u), *f = pop(u);
            if (f->kind != V_GLOBAL || args->kind != V_TUPLE)
                pk_die(u, "REDUCE of something that is not an allowed callable");
            if (f->i == G_ORDERED_DICT && args->n == 0)
                push(u, new_value(u, V_DICT));
            else if (f->i == G_REBUILD_TENSOR)
                push(u, rebuild_tensor(u, args));
            else
                pk_die(u, "unsupported call");
            break;
        }
        case 'b': { /* BUILD: an OrderedDict's attributes (its _metadata), not needed */
            value *state = pop(u);
            if (top(u)->kind != V_DICT || (state->kind != V_DICT && state->kind != V_NONE))
                pk_die(u, "BUILD of something that is not a dict");
            break;
        }
        case 'q': case 'r': case 0x94: { /* BINPUT, LONG_BINPUT, MEMOIZE */
            /* MEMOIZE stores at len(memo), the number of entries stored so far. */
            size_t i = op == 'q' ? *take(u, 1) : op == 'r' ? le(take(u, 4), 4) : u->memo_len;
            if (i > (1u << 24))
                pk_die(u, "memo index %zu too large", i);
            if (i >= u->memo_cap) {
                size_t cap = u->memo_cap ? u->memo_cap : 64;
                while (cap <= i)
                    cap *= 2;
                u->memo = xrealloc(u->memo, cap * sizeof *u->memo);
                memset(u->memo + u->memo_cap, 0, (cap - u->memo_cap) * sizeof *u->memo);
                u->memo_cap = cap;
            }
            if (!u->memo[i])
                u->memo_len++;
            u->memo[i] = top(u);
            break;
        }
        case 'h': case 'j': { /* BINGET, LONG_BINGET */
            size_t i = op == 'h' ? *take(u, 1) : le(take(u, 4), 4);
            if (i >= u->memo_cap || !u->memo[i])
                pk_die(u, "memo index %zu not set", i);
            push(u, u->memo[i]);
            break;
        }
        case '.': /* STOP */
            return pop(u);
        default:
            u->p--;
            pk_die(u, "unsupported pickle opcode 0x%02x", op);
        }
    }
}

void tb_open(safetensors *tb, const char *path)
{
    size_t size;
    void *map = map_file(path, &size);
    /* (unmapped if the file is refused, for callers that go on: the fuzzer) */
    file_map fm = {map, size};
    die_cleanup_push(file_map_release, &fm);
    tb_parse(tb, path, map ? map : "", size);
    die_cleanup_pop();
    tb->map = map;
}

/* What tb_parse holds while it reads, released at the end (and by die). */
typedef struct {
    safetensors *tb; /* closed too when dying */
    zip_archive z;
    unpickler u;
    char *prefix, *bo_name;
} tb_parsing;

static void tb_parse_cleanup(void *arg)
{
    tb_parsing *p = arg;
    for (size_t i = 0; i < p->u.nall; i++) {
        free(p->u.all[i]->s);
        free(p->u.all[i]->items);
        free(p->u.all[i]);
    }
    free(p->u.all);
    free(p->u.stack);
    free(p->u.memo);
    free(p->prefix);
    free(p->bo_name);
    for (int i = 0; i < p->z.count; i++)
        free(p->z.entries[i].name);
    free(p->z.entries);
    if (p->tb)
        st_close(p->tb);
}

void tb_parse(safetensors *tb, const char *path, const void *buf, size_t size)
{
    memset(tb, 0, sizeof *tb);
    tb_parsing p = {.tb = tb};
    die_cleanup_push(tb_parse_cleanup, &p);
    tb->path = xstrdup(path);
    tb->size = size;
    if (tb->size == 0)
        die("%s: empty file", path);
    p.z = (zip_archive){.path = path, .b = buf, .size = tb->size};
    if (tb->size < 4 || le(p.z.b, 4) != 0x04034b50)
        die("%s: not a zip archive (the legacy torch.save format of torch < 1.6 is not supported)", path);
    zip_read_directory(&p.z);

    /* The pickle is "PREFIX/data.pkl"; storages are "PREFIX/data/KEY". */
    const zip_entry *pkl = NULL;
    for (int i = 0; i < p.z.count && !pkl; i++) {
        const char *slash = strchr(p.z.entries[i].name, '/');
        if (slash && !strcmp(slash, "/data.pkl"))
            pkl = &p.z.entries[i];
    }
    if (!pkl)
        die("%s: not a PyTorch archive: no data.pkl", path);
    char *prefix = p.prefix = xstrdup(pkl->name);
    prefix[strlen(prefix) - strlen("data.pkl")] = 0;
    if (asprintf(&p.bo_name, "%sbyteorder", prefix) < 0)
        die("out of memory");
    const zip_entry *bo = zip_find(&p.z, p.bo_name);
    if (bo && !(bo->size == 6 && !memcmp(bo->data, "little", 6)))
        die("%s: big-endian tensors are not supported", path);

    p.u = (unpickler){.path = path, .zip = &p.z, .prefix = prefix, .p = pkl->data,
                      .start = pkl->data, .end = pkl->data + pkl->size};
    value *root = unpickle(&p.u);
    if (root->kind != V_DICT)
        die("%s: %sdata.pkl: not a state dict", path, prefix);
    tb->tensors = xcalloc(root->n, sizeof *tb->tensors);
    for (int i = 0; i < root->n; i++) {
        value *k = root->items[2 * i], *v = root->items[2 * i + 1];
        if (k->kind != V_STR)
            die("%s: %sdata.pkl: state dict key %d is not a string", path, prefix, i);
        if (v->kind != V_TENSOR)
            die("%s: %sdata.pkl: entry %s is not a tensor", path, prefix, k->s);
        tensor_view(path, k->s, v, &tb->tensors[tb->count++]);
    }
    die_cleanup_pop();
    p.tb = NULL; /* the tensors are the result */
    tb_parse_cleanup(&p);
}
