/* npy.h - tensor streams: a sequence of NPY format 1.0 frames with no global
 * header, so that numpy.load() called repeatedly reads them and `cat a b` of
 * two streams is a stream.  See tensor-stream(5). */
#ifndef BP_NPY_H
#define BP_NPY_H

#include "input.h"

#include <stdint.h>
#include <stdio.h>

/* Rows per frame that writers aim for: moderate, so that pipes stream. */
#define STREAM_FRAME_ROWS 1024
/* Largest frame a reader accepts (data bytes). */
#define STREAM_MAX_FRAME_BYTES ((uint64_t)1 << 32)

typedef enum { NPY_I4, NPY_F4 } npy_dtype;

typedef struct {
    npy_dtype dtype;
    int ndim;
    int64_t shape[3];
    void *data;     /* shape[0]*shape[1]*shape[2] elements, C order */
    size_t cap;     /* bytes allocated for data (reused between frames) */
} npy_array;

typedef struct {
    input_set in;
    long frame;      /* 1-based number of the frame being read, per operand */
    uint64_t offset; /* bytes consumed from the current operand */
    uint64_t frame_offset; /* offset at which that frame starts */
} npy_reader;

void npy_reader_init(npy_reader *r, int count, char **names);
/* A reader of the stream in buf[0..len) (not copied; it must outlive the
 * reader), named name in messages: for tests and fuzz harnesses. */
void npy_reader_init_mem(npy_reader *r, const void *buf, size_t len, const char *name);
/* Read the next frame of any operand into *a (reusing a->data).  The frame
 * must be 3-dimensional with the given dtype.  Returns 1, or 0 at the end of
 * the last operand.  Malformed or truncated input is fatal:
 * "tool: NAME: frame N at byte B: what is wrong". */
int npy_read(npy_reader *r, npy_array *a, npy_dtype want);
/* Report an error in the frame just read (e.g. a bad id) and exit 1. */
__attribute__((noreturn, format(printf, 2, 3)))
void npy_frame_error(const npy_reader *r, const char *fmt, ...);

/* Write one frame; name is for error messages. */
void npy_write(FILE *f, const char *name, npy_dtype dtype, int ndim,
               const int64_t *shape, const void *data);

/* Token frames: check that every sequence is ids >= 0 followed only by -1
 * padding, and return its length through lens[rows*cols] (may be NULL).
 * max_id bounds the ids (exclusive; 0 = no bound). */
void tokens_check(const npy_reader *r, const npy_array *a, int32_t max_id, int32_t *lens);

void npy_free(npy_array *a);

#endif
