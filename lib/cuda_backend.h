/* cuda_backend.h - the CUDA backend (lib/cuda) as a shared object,
 * libbertpipe-cuda.so, that the tools open with dlopen only when they look
 * for a GPU: a run on the CPU never loads cuBLAS (0.04 s of relocations at
 * every start on this project's machine), and a build with CUDA runs where
 * the CUDA libraries are not installed.  The tools find it in
 * ../lib/bertpipe/ beside their own directory (the build tree and an
 * installed tree alike), or at $BERTPIPE_CUDA_BACKEND.
 *
 * The shared object exports one symbol, bertpipe_cuda_backend, a table of
 * its entry points; it calls back into the tool for the few library
 * functions of lib/cuda/host-symbols.list, which every program linked with
 * the library exports.  lib/cuda_backend.c loads it and implements the
 * entry points' C API (encoder.h's gpu_available and encoder_gpu_open,
 * gpu.h, comm.h's comm_nccl_init, and mnr_compute_gpu below) on it. */
#ifndef BP_CUDA_BACKEND_H
#define BP_CUDA_BACKEND_H

#include "comm.h"
#include "encoder.h"
#include "loss.h"

/* What the two sides must agree on, compared when the backend is opened,
 * so that one from another build is refused: BP_CUDA_ABI, a checksum of the
 * library's headers (Makefile), and the sizes of the structures they
 * share. */
#ifndef BP_CUDA_ABI
#define BP_CUDA_ABI "unknown"
#endif
#define CUDA_BACKEND_LAYOUT                                                                      \
    {sizeof(cuda_backend), sizeof(encoder), sizeof(encoder_settings), sizeof(bert_model),      \
     sizeof(loss), sizeof(loss_batch), sizeof(comm)}
enum { CUDA_BACKEND_LAYOUT_SIZES = 7 };

typedef struct cuda_backend cuda_backend;
struct cuda_backend {
    const char *abi;                          /* BP_CUDA_ABI of the build that made it */
    size_t layout[CUDA_BACKEND_LAYOUT_SIZES]; /* CUDA_BACKEND_LAYOUT there */
    int (*gpu_available)(char *why, size_t n);
    encoder *(*encoder_gpu_open)(const bert_model *m, const encoder_settings *s);
    void (*gpu_encoder_hidden)(const encoder *e, int layer, float *out);
    void (*gpu_download)(float *dst, const float *device_src, size_t n);
    double (*gpu_loss_on_host_data)(const loss *l, const loss_batch *b, float *const *dcol);
    double (*mnr_compute_gpu)(const loss *l, const loss_batch *b, const float *head,
                              float *const *dcol, float *dhead);
    int (*comm_nccl_init)(comm *c); /* NULL: built without NCCL */
};

/* The MNR loss's GPU implementation (loss.h: compute_gpu; lib/cuda/loss.cu). */
double mnr_compute_gpu(const loss *l, const loss_batch *b, const float *head, float *const *dcol,
                       float *dhead);

#endif
