/* embed - sentence embeddings of token streams: one vector per sequence, as
 * sentence-transformers' encode() computes them (the model's Transformer,
 * Pooling and optional Normalize modules).
 *
 * Token frames (rows, columns, length) come in; embedding frames (rows,
 * columns, H) go out in the same order, one per input frame (large frames
 * are split into frames of STREAM_FRAME_ROWS rows, so that pipes stream and
 * memory stays bounded).  The encoder is packed (bert.h): a batch computes
 * on its real tokens only, so batches need no padding, and sorting by length
 * (which sentence-transformers does to save padding) would change nothing. */
#include "encoder.h"
#include "gemm.h"
#include "model.h"
#include "npy.h"
#include "threads.h"
#include "util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>


static void usage(void)
{
    out_printf(stdout, "stdout", "%s",
"Usage: embed -m MODEL [OPTION]... [FILE]...\n"
"Turn token streams into sentence embeddings with the model in directory MODEL.\n"
"\n"
"Each FILE holds token frames (<i4, shape (rows, columns, length), token ids then\n"
"-1 padding), as wp-tokenize writes them; standard output gets embedding frames\n"
"(<f4, shape (rows, columns, H)), one vector per sequence in input order.  The\n"
"model directory's pooling (1_Pooling/config.json; mean without one) and\n"
"normalisation (a Normalize module in modules.json) apply.  With no FILE, or\n"
"when FILE is -, read standard input.\n"
"\n"
"Options:\n"
"  -m, --model=DIR       model directory (Hugging Face or sentence-transformers)\n"
"  -b, --batch-size=N    sequences per forward pass on the CPU (default 32, as\n"
"                        sentence-transformers' encode); the GPU takes each\n"
"                        frame at once, in batches of its own size\n"
"      --normalize       scale every embedding to unit length, whatever the\n"
"                        model directory says\n"
"      --device=DEVICE   auto (the default: the GPU when there is one, else the\n"
"                        CPU; names the device on stderr), cpu or cuda\n"
"      --precision=P     the GPU's arithmetic: bf16 (the default: bf16 products,\n"
"                        fp32 accumulation) or fp32; the CPU is always fp32\n"
"      --threads=N       CPU threads (default: all cores)\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input, model or write error, 2 usage error.\n");
    out_close(stdout, "stdout");
}

int main(int argc, char **argv)
{
    util_init(argv[0]);
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"batch-size", required_argument, NULL, 'b'},
        {"normalize", no_argument, NULL, 'n'},
        {"device", required_argument, NULL, 'd'},
        {"precision", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *model_dir = NULL;
    long batch_size = 32, threads = 0;
    int force_normalize = 0, c;
    device_kind device = DEVICE_AUTO;
    precision precision = PRECISION_BF16;
    int precision_given = 0;
    opterr = 0; /* our own one-line messages below */
    while ((c = getopt_long(argc, argv, ":m:b:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case 'b':
            if (parse_long(optarg, 1, 65536, &batch_size) != 0)
                die_usage("--batch-size: '%s' is not a whole number from 1 to 65536", optarg);
            break;
        case 'n':
            force_normalize = 1;
            break;
        case 'd':
            if (device_parse(optarg, &device) != 0)
                die_usage("--device: '%s' is not auto, cpu or cuda", optarg);
            break;
        case 'p':
            if (precision_parse(optarg, &precision) != 0)
                die_usage("--precision: '%s' is not fp32 or bf16", optarg);
            precision_given = 1;
            break;
        case 't':
            if (parse_long(optarg, 1, 4096, &threads) != 0)
                die_usage("--threads: '%s' is not a whole number from 1 to 4096", optarg);
            break;
        case 'h':
            usage();
            return 0;
        case 'V':
            print_version();
            return 0;
        default:
            die_bad_option(c, argv);
        }
    }
    if (!model_dir)
        die_usage("no model: -m MODEL is required");

    threads_set((int)threads);
    bert_model m;
    /* the CPU's bf16: the matrices read in bf16 only (a third less memory) */
    if (device == DEVICE_CPU && precision_given && precision == PRECISION_BF16 &&
        gemm_bf16_available(NULL))
        model_load_bf16(&m, model_dir);
    else
        model_load(&m, model_dir);
    int H = m.cfg.hidden, P = bert_max_tokens(&m.cfg), normalize = m.normalize || force_normalize;
    encoder_settings es = {.device = device, .precision = precision,
                           .precision_given = precision_given, .doing = "embedding",
                           .batch_size = (int)batch_size};
    /* Opened once the first frame is read, so that an error in the input is
     * the only line (the device is announced after it). */
    encoder *enc = NULL;

    npy_reader r;
    npy_reader_init(&r, argc - optind, argv + optind);
    npy_array a = {0};
    int32_t *lens = NULL;
    float *out = NULL;
    size_t lens_cap = 0, out_cap = 0;
    while (npy_read(&r, &a, NPY_I4)) {
        int64_t rows = a.shape[0], cols = a.shape[1], nseq = rows * cols;
        if (lens_cap < (size_t)nseq) {
            lens_cap = nseq;
            free(lens);
            lens = xmallocarray(lens_cap, sizeof *lens);
        }
        tokens_check(&r, &a, m.cfg.vocab_size, lens);
        for (int64_t s = 0; s < nseq; s++) {
            if (lens[s] == 0)
                npy_frame_error(&r, "row %lld column %lld: empty sequence", (long long)(s / cols),
                                (long long)(s % cols));
            if (lens[s] > P)
                npy_frame_error(&r, "row %lld column %lld: %d tokens, more than the model's %d "
                                "positions (wp-tokenize --max-length %d truncates)",
                                (long long)(s / cols), (long long)(s % cols), lens[s], P,
                                m.max_seq_length);
        }

        if (!enc)
            enc = encoder_open(&m, &es);
        /* Output frames of at most STREAM_FRAME_ROWS rows. */
        int64_t chunk = rows < STREAM_FRAME_ROWS ? rows : STREAM_FRAME_ROWS;
        if (out_cap < (size_t)(chunk * cols)) {
            out_cap = chunk * cols;
            free(out);
            out = xmallocarray(out_cap * H, sizeof *out);
        }
        int64_t row = 0;
        do {
            int64_t n = rows - row < chunk ? rows - row : chunk, first = row * cols;
            int T = (int)a.shape[2];
            const int32_t *ids = (const int32_t *)a.data + first * T;
            if (n * cols > 0)
                encoder_embed(enc, ids, lens + first, n * cols, T, normalize, out);
            int64_t shape[3] = {n, cols, H};
            npy_write(stdout, "stdout", NPY_F4, 3, shape, out);
            row += n;
        } while (row < rows);
        /* Pass each frame on now, so the next stage need not wait for the
         * following one; on failure out_close reports the write error. */
        if (fflush(stdout) != 0)
            out_close(stdout, "stdout");
    }
    if (!enc)
        enc = encoder_open(&m, &es); /* no input: still says where, or that cuda is missing */
    out_close(stdout, "stdout");
    double gflop, seconds;
    if (gemm_products_counted(&gflop, &seconds) && seconds > 0)
        fprintf(stderr, "embed: dense products: %.6g GFLOP in %.3f s of the threads' time, "
                        "%.1f GFLOP/s per thread\n", gflop, seconds, gflop / seconds);
    npy_free(&a);
    free(lens);
    free(out);
    encoder_close(enc);
    model_free(&m);
    return 0;
}
