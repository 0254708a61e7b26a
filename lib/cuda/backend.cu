/* backend.cu - the table that libbertpipe-cuda.so exports
 * (cuda_backend.h): its only visible symbol (lib/cuda/backend.map). */
#include "common.cuh"

extern "C" {
#include "comm.h"
#include "cuda_backend.h"
}

extern "C" const cuda_backend bertpipe_cuda_backend = {
    BP_CUDA_ABI,
    CUDA_BACKEND_LAYOUT,
    gpu_available,
    encoder_gpu_open,
    gpu_encoder_hidden,
    gpu_download,
    gpu_loss_on_host_data,
    mnr_compute_gpu,
#ifdef BP_HAVE_NCCL
    comm_nccl_init,
#else
    NULL,
#endif
};
