/* cuda_backend.c - cuda_backend.h's loader, and the backend's C API on it;
 * in a build without CUDA, that API saying so. */
#include "cuda_backend.h"
#include "gpu.h"
#include "util.h"

#include <stdio.h>

#ifdef BP_HAVE_CUDA
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const cuda_backend *backend;
static char backend_error[PATH_MAX + 512]; /* why backend is NULL */
static pthread_once_t backend_once = PTHREAD_ONCE_INIT;

/* Where the backend is: $BERTPIPE_CUDA_BACKEND, or ../lib/bertpipe/ from the
 * program's directory; 0, or -1 with backend_error set. */
static int backend_path(char *path, size_t n)
{
    const char *env = getenv("BERTPIPE_CUDA_BACKEND");
    if (env && *env) {
        if (strlen(env) >= n) {
            snprintf(backend_error, sizeof backend_error,
                     "cannot load the CUDA backend: BERTPIPE_CUDA_BACKEND is too long");
            return -1;
        }
        snprintf(path, n, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len < 0) {
        snprintf(backend_error, sizeof backend_error,
                 "cannot find the CUDA backend: /proc/self/exe unreadable");
        return -1;
    }
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    snprintf(path, n, "%s/../lib/bertpipe/libbertpipe-cuda.so", exe);
    return 0;
}

static void backend_load(void)
{
    /* The CUDA runtime needs the driver's libcuda.so.1: without it there is
     * no GPU to find, and nothing more is loaded. */
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!driver) {
        snprintf(backend_error, sizeof backend_error, "no CUDA device: no CUDA driver (%s)",
                 dlerror());
        return;
    }
    /* A driver that finds no GPU says so without the backend, whose CUDA
     * runtime and cuBLAS take 0.04 s to load.  (A libcuda.so.1 without
     * these two functions is left to the runtime to judge.) */
    int (*cu_init)(unsigned) = (int (*)(unsigned))dlsym(driver, "cuInit");
    int (*cu_count)(int *) = (int (*)(int *))dlsym(driver, "cuDeviceGetCount");
    if (cu_init && cu_count) {
        int status = cu_init(0), count = 0;
        if (status == 0)
            status = cu_count(&count);
        if (status) {
            snprintf(backend_error, sizeof backend_error,
                     "no CUDA device: the CUDA driver finds none (error %d)", status);
            return;
        }
        if (count < 1) {
            snprintf(backend_error, sizeof backend_error,
                     "no CUDA device: the CUDA driver finds none");
            return;
        }
    }
    char path[PATH_MAX + 64]; /* the program's directory and the rest */
    if (backend_path(path, sizeof path) < 0)
        return;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(backend_error, sizeof backend_error, "cannot load the CUDA backend: %s",
                 dlerror());
        return;
    }
    const cuda_backend *b = dlsym(h, "bertpipe_cuda_backend");
    const size_t layout[] = CUDA_BACKEND_LAYOUT;
    if (!b) {
        snprintf(backend_error, sizeof backend_error,
                 "cannot use the CUDA backend %s: it is from another build of bertpipe (%s)", path,
                 dlerror());
    } else if (strcmp(b->abi, BP_CUDA_ABI) || memcmp(b->layout, layout, sizeof layout)) {
        snprintf(backend_error, sizeof backend_error,
                 "cannot use the CUDA backend %s: it is from another build of bertpipe", path);
        b = NULL;
    }
    if (!b) {
        dlclose(h);
        return;
    }
    backend = b;
}

/* The backend, or NULL with backend_error saying why. */
static const cuda_backend *backend_open(void)
{
    pthread_once(&backend_once, backend_load);
    return backend;
}

/* The backend, which a GPU encoder's existence proves loaded. */
static const cuda_backend *backend_loaded(const char *what)
{
    if (!backend_open())
        die("%s: %s", what, backend_error);
    return backend;
}

int gpu_available(char *why, size_t n)
{
    if (backend_open())
        return backend->gpu_available(why, n);
    if (why && n)
        snprintf(why, n, "%s", backend_error);
    return 0;
}

encoder *encoder_gpu_open(const bert_model *m, const encoder_settings *s)
{
    return backend_loaded("--device cuda")->encoder_gpu_open(m, s);
}

void gpu_encoder_hidden(const encoder *e, int layer, float *out)
{
    backend_loaded("gpu_encoder_hidden")->gpu_encoder_hidden(e, layer, out);
}

void gpu_download(float *dst, const float *device_src, size_t n)
{
    backend_loaded("gpu_download")->gpu_download(dst, device_src, n);
}

double gpu_loss_on_host_data(const loss *l, const loss_batch *b, float *const *dcol)
{
    return backend_loaded("gpu_loss_on_host_data")->gpu_loss_on_host_data(l, b, dcol);
}

double mnr_compute_gpu(const loss *l, const loss_batch *b, const float *head, float *const *dcol,
                       float *dhead)
{
    return backend_loaded("mnr_compute_gpu")->mnr_compute_gpu(l, b, head, dcol, dhead);
}

int comm_nccl_init(comm *c)
{
    const cuda_backend *b = backend_open();
    return b && b->comm_nccl_init ? b->comm_nccl_init(c) : -1;
}

#else

int gpu_available(char *why, size_t n)
{
    if (why && n)
        snprintf(why, n, "built without CUDA");
    return 0;
}

encoder *encoder_gpu_open(const bert_model *m, const encoder_settings *s)
{
    die("--device cuda: built without CUDA");
}

/* gpu.h's extras: no GPU encoder exists to call them with. */
void gpu_encoder_hidden(const encoder *e, int layer, float *out)
{
    die("gpu_encoder_hidden: built without CUDA");
}

void gpu_download(float *dst, const float *device_src, size_t n)
{
    die("gpu_download: built without CUDA");
}

double gpu_loss_on_host_data(const loss *l, const loss_batch *b, float *const *dcol)
{
    die("gpu_loss_on_host_data: built without CUDA");
}

#endif
