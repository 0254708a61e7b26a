/* PyTorch state-dict archives: the tiny fixture's weights written without
 * torch (tests/py/mkbin.py) and, where torch is installed, by torch.save,
 * read back equal to model.safetensors; broken archives rejected in one line. */
#include "../tap.h"
#include "child.h"
#include "safetensors.h"
#include "torchbin.h"
#include "util.h"

#include <string.h>

static char *dir;

static void open_bin(const void *path)
{
    safetensors tb;
    tb_open(&tb, path);
}

/* Every tensor of the safetensors file is in the archive, equal bit for bit. */
static void same_as_safetensors(const char *bin, const char *st_path, const char *what)
{
    safetensors st;
    safetensors tb;
    st_open(&st, st_path);
    tb_open(&tb, bin);
    int same = 0;
    for (int i = 0; i < st.count; i++) {
        const st_tensor *a = &st.tensors[i], *b = st_find(&tb, a->name);
        if (b && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes &&
            !memcmp(b->shape, a->shape, a->ndim * sizeof *a->shape) && !memcmp(b->data, a->data, a->nbytes))
            same++;
        else
            diag("%s differs", a->name);
    }
    ok(tb.count == st.count && same == st.count, "%s: %d of %d tensors equal to model.safetensors", what, same,
       st.count);
    st_close(&tb);
    st_close(&st);
}

static void rejected(const char *path, const char *want, const char *what)
{
    char err[2048];
    int status = run_in_child(open_bin, path, err, sizeof err);
    int good = status == 1 && one_line(err) && strstr(err, path) && strstr(err, want);
    err[strcspn(err, "\n")] = 0;
    ok(good, "%s rejected: %s", what, err);
}

int main(void)
{
    util_init("test-torchbin");
    dir = tap_temp_dir("torchbin");
    if (sh("python3 -c '' 2>/dev/null") != 0)
        skip_all("python3 not found (tests/py/mkbin.py writes the archives)");
    char st_path[4096], bin[4096];
    snprintf(st_path, sizeof st_path, "%s/fixtures/tiny/model/model.safetensors", shared_dir());

    /* Written without torch; the tensors of each layer share one storage. */
    snprintf(bin, sizeof bin, "%s/plain.bin", dir);
    ok(sh("python3 tests/py/mkbin.py %s %s", st_path, bin) == 0, "mkbin.py wrote %s", bin);
    same_as_safetensors(bin, st_path, "mkbin.py archive");

    static const char *variants[][2] = {
        {"compressed", "compressed zip entry"},
        {"global", "global posix.system is not allowed"},
        {"noncontig", "tensor encoder.layer.0.attention.output.dense.weight: not contiguous"},
        {"opcode", "unsupported pickle opcode 0x5d"},
        {"legacy", "legacy torch.save format"},
        {"short", "storage 0: 33 elements of 4 bytes in an entry of 128 bytes"},
    };
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.bin", dir, variants[i][0]);
        if (sh("python3 tests/py/mkbin.py %s %s %s", st_path, path, variants[i][0]) != 0) {
            ok(0, "mkbin.py %s", variants[i][0]);
            continue;
        }
        rejected(path, variants[i][1], variants[i][0]);
    }
    /* Truncated: the end of the central directory cut off. */
    size_t len;
    char *bytes = read_file(bin, &len);
    char cut[4200];
    snprintf(cut, sizeof cut, "%s/truncated.bin", dir);
    FILE *f = fopen(cut, "wb");
    fwrite(bytes, 1, len - 30, f);
    fclose(f);
    rejected(cut, "no end of central directory", "truncated archive");
    free(bytes);

    if (sh("python3 -c 'import torch, transformers' 2>/dev/null") != 0) {
        printf("ok %d # SKIP torch or transformers not installed: no torch.save archives\n", ++tap_n);
        printf("ok %d # SKIP torch or transformers not installed: no torch.save archives\n", ++tap_n);
        return done_testing();
    }
    char model_dir[4096], tbin[4200];
    snprintf(model_dir, sizeof model_dir, "%s/fixtures/tiny/model", shared_dir());
    snprintf(tbin, sizeof tbin, "%s/torch.bin", dir);
    if (sh("python3 tests/py/torchsave.py %s %s 2>/dev/null", model_dir, tbin) == 0)
        same_as_safetensors(tbin, st_path, "torch.save(BertModel.state_dict())");
    else
        ok(0, "torchsave.py wrote %s", tbin);

    snprintf(tbin, sizeof tbin, "%s/dtypes.bin", dir);
    if (sh("python3 tests/py/torchsave.py --dtypes %s", tbin) != 0) {
        ok(0, "torchsave.py --dtypes");
        return done_testing();
    }
    safetensors tb;
    tb_open(&tb, tbin);
    const st_tensor *h = st_find(&tb, "half"), *b = st_find(&tb, "bfloat16"), *d = st_find(&tb, "double"),
                    *l = st_find(&tb, "long"), *v = st_find(&tb, "view"), *t = st_find(&tb, "tail");
    int good = h && b && d && l && v && t && h->dtype == ST_F16 && b->dtype == ST_BF16 && d->dtype == ST_F64 &&
               l->dtype == ST_I64 && v->dtype == ST_F32 && h->ndim == 2 && h->shape[0] == 2 && h->shape[1] == 3 &&
               v->ndim == 2 && v->shape[0] == 2 && v->shape[1] == 2 && t->numel == 2;
    if (good) {
        float hf[6], bf[6], vf[4], tf[2];
        double df[4], lf[5];
        st_to_f32(h, hf);
        st_to_f32(b, bf);
        st_to_f32(v, vf);
        st_to_f32(t, tf);
        st_to_f64(d, df);
        st_to_f64(l, lf);
        for (int i = 0; i < 6; i++)
            good &= hf[i] == i / 4.0f && bf[i] == i - 3;
        for (int i = 0; i < 4; i++)
            good &= vf[i] == 3 + i && df[i] == i / 8.0;
        for (int i = 0; i < 5; i++)
            good &= lf[i] == i - 2;
        good &= tf[0] == 8 && tf[1] == 9;
    }
    ok(good, "torch.save: float16, bfloat16, float64, int64 and views at storage offsets read back");
    st_close(&tb);
    remove_tree(dir);
    return done_testing();
}
