/* Tensor stream round trip and rejection of malformed frames. */
#include "../tap.h"
#include "child.h"
#include "npy.h"
#include "util.h"

#include <setjmp.h>
#include <stdint.h>
#include <string.h>

/* The die handler the fuzz harnesses use: the line, then back to main. */
static jmp_buf died;
static char died_line[1024];
static int died_status;

static void catch_die(int status, const char *line)
{
    died_status = status;
    snprintf(died_line, sizeof died_line, "%s", line);
    longjmp(died, 1);
}

static char *dir;

static char *write_tmp(const char *name, const void *p, size_t n)
{
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
    return path;
}

/* Read every frame of the file at path; the tests run it in a child. */
static void read_all(const void *path)
{
    char *name = (char *)path;
    npy_reader r;
    npy_array a = {0};
    npy_reader_init(&r, 1, &name);
    while (npy_read(&r, &a, NPY_I4))
        ;
}

/* Read the first frame at path and check its token sequences. */
static void check_tokens(const void *path)
{
    char *name = (char *)path;
    npy_reader r;
    npy_array a = {0};
    npy_reader_init(&r, 1, &name);
    npy_read(&r, &a, NPY_I4);
    tokens_check(&r, &a, 0, NULL);
}

static int read_in_child(char *path, char *err, size_t errlen)
{
    return run_in_child(read_all, path, err, errlen);
}

int main(void)
{
    util_init("test-npy");
    dir = tap_temp_dir("npy");

    /* Two frames written, then read back. */
    char *path = path_join(dir, "ok.npy");
    FILE *f = fopen(path, "wb");
    int32_t t1[2 * 2 * 3] = {101, 7, 102, 101, 102, -1, 101, 8, 102, 101, 9, 102};
    int64_t s1[3] = {2, 2, 3};
    npy_write(f, path, NPY_I4, 3, s1, t1);
    int32_t t2[1 * 1 * 2] = {101, 102};
    int64_t s2[3] = {1, 1, 2};
    npy_write(f, path, NPY_I4, 3, s2, t2);
    fclose(f);

    size_t len;
    char *bytes = read_file(path, &len);
    ok(!memcmp(bytes, "\x93NUMPY\x01\x00", 8), "frame starts with NPY 1.0 magic");
    size_t hlen = (unsigned char)bytes[8] | (unsigned char)bytes[9] << 8;
    ok((10 + hlen) % 64 == 0, "data aligned to 64 bytes (header %zu)", hlen);

    npy_reader r;
    npy_array a = {0};
    npy_reader_init(&r, 1, &path);
    ok(npy_read(&r, &a, NPY_I4) == 1, "first frame read");
    ok(a.shape[0] == 2 && a.shape[1] == 2 && a.shape[2] == 3, "first frame shape");
    ok(!memcmp(a.data, t1, sizeof t1), "first frame data");
    int32_t lens[4];
    tokens_check(&r, &a, 0, lens);
    ok(lens[0] == 3 && lens[1] == 2 && lens[2] == 3 && lens[3] == 3, "sequence lengths");
    ok(npy_read(&r, &a, NPY_I4) == 1 && a.shape[0] == 1 && a.shape[2] == 2, "second frame");
    ok(npy_read(&r, &a, NPY_I4) == 0, "end of stream");
    npy_free(&a);

    /* Every truncation of a valid stream is rejected with frame and offset. */
    char err[512];
    int all_fail = 1;
    for (size_t cut = 1; cut < len; cut++) {
        char *p = write_tmp("cut.npy", bytes, cut);
        int st = read_in_child(p, err, sizeof err);
        if (st == 0) {
            /* valid only when the cut falls exactly between frames */
            npy_reader rr;
            npy_array aa = {0};
            npy_reader_init(&rr, 1, &p);
            npy_read(&rr, &aa, NPY_I4);
            if (rr.offset != cut)
                all_fail = 0;
            npy_free(&aa);
        } else if (st != 1 || !strstr(err, "frame ") || !strstr(err, " at byte ")) {
            all_fail = 0;
            diag("cut %zu: status %d: %s", cut, st, err);
        }
        free(p);
    }
    ok(all_fail, "every truncation fails with exit 1 naming frame and byte");

    char *p = write_tmp("bad.npy", "hello world, not numpy", 22);
    ok(read_in_child(p, err, sizeof err) == 1 && strstr(err, "frame 1 at byte 0: not an NPY frame"),
       "bad magic: %s", err);
    free(p);

    /* Second frame corrupted: the message names frame 2 and its offset. */
    char *bad = xmalloc(len);
    memcpy(bad, bytes, len);
    size_t second = 10 + hlen + sizeof t1;
    memcpy(bad + second + 10, "{'descr': '<f8'", 15);
    p = write_tmp("bad2.npy", bad, len);
    char want[64];
    snprintf(want, sizeof want, "frame 2 at byte %zu: dtype", second);
    ok(read_in_child(p, err, sizeof err) == 1 && strstr(err, want), "wrong dtype: %s", err);
    free(p);

    /* Padding followed by an id is rejected. */
    {
        char *q = path_join(dir, "pad.npy");
        FILE *g = fopen(q, "wb");
        int32_t t[3] = {101, -1, 102};
        int64_t s[3] = {1, 1, 3};
        npy_write(g, q, NPY_I4, 3, s, t);
        fclose(g);
        ok(run_in_child(check_tokens, q, err, sizeof err) == 1 && strstr(err, "expected token ids then -1 padding"),
           "id after padding rejected: %s", err);
        free(q);
    }

    /* checked_size: the one size computation of every reader. */
    {
        int64_t wrap[3] = {2097152, 2097152, 1048576}, neg[2] = {3, -1},
                zero[3] = {0, INT64_MAX, 7}, dims[3] = {2, 3, 4};
        uint64_t n = 0, b = 0;
        ok(checked_size(wrap, 3, 4, UINT64_MAX, &n, &b) == -1, "2^62 elements of 4 bytes overflow");
        ok(checked_size(neg, 2, 1, UINT64_MAX, &n, &b) == -1, "a negative dimension is refused");
        ok(checked_size(zero, 3, 4, 0, &n, &b) == 0 && n == 0 && b == 0, "a zero dimension: 0 bytes");
        ok(checked_size(dims, 3, 4, 96, &n, &b) == 0 && n == 24 && b == 96, "2 x 3 x 4 of 4 bytes");
        ok(checked_size(dims, 3, 4, 95, &n, &b) == -1, "over the limit");
    }

    /* A stream in memory; a shape whose bytes wrap to 0 is a frame error
     * (it used to pass the size check and crash the tools). */
    {
        npy_reader mr;
        npy_array ma = {0};
        int frames = 0;
        npy_reader_init_mem(&mr, bytes, len, "mem");
        while (npy_read(&mr, &ma, NPY_I4))
            frames++;
        ok(frames == 2, "two frames from memory");
        npy_reader_init_mem(&mr, "", 0, "empty");
        ok(npy_read(&mr, &ma, NPY_I4) == 0, "an empty buffer is an empty stream");
        static const char h[] = "\x93NUMPY\x01\x00\x50\x00{'descr': '<i4', 'fortran_order': False, "
                        "'shape': (2097152, 2097152, 1048576), }";
        set_die_handler(catch_die);
        volatile int returned = 0;
        if (!setjmp(died)) {
            npy_reader_init_mem(&mr, h, sizeof h - 1, "wrap");
            npy_read(&mr, &ma, NPY_I4);
            returned = 1;
        }
        set_die_handler(NULL);
        ok(!returned && died_status == 1 &&
               !strcmp(died_line, "test-npy: wrap: frame 1 at byte 0: shape (2097152, 2097152, "
                                  "1048576) is too large (at most 4294967296 data bytes)"),
           "wrapping shape: %s", died_line);
        input_close(&mr.in);
        npy_free(&ma);
    }

    free(bad);
    free(bytes);
    remove_tree(dir);
    return done_testing();
}
