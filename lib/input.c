#define _GNU_SOURCE
#include "input.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static char *stdin_name[] = {"-"};

void input_init(input_set *in, int count, char **names)
{
    memset(in, 0, sizeof *in);
    in->names = count ? names : stdin_name;
    in->count = count ? count : 1;
}

int input_open_next(input_set *in)
{
    if (in->f)
        input_close(in);
    if (in->next >= in->count)
        return 0;
    const char *name = in->names[in->next++];
    in->line = 0;
    if (!strcmp(name, "-")) {
        in->f = stdin;
        in->name = "stdin";
    } else {
        in->f = fopen(name, "rb");
        if (!in->f)
            die("%s: %s", name, strerror(errno));
        in->name = name;
    }
    return 1;
}

void input_close(input_set *in)
{
    if (!in->f)
        return;
    if (ferror(in->f))
        die("%s: read error: %s", in->name, strerror(errno));
    if (in->f != stdin)
        fclose(in->f);
    in->f = NULL;
}

ssize_t input_getline(input_set *in, char **buf, size_t *cap)
{
    for (;;) {
        if (!in->f && !input_open_next(in))
            return -1;
        errno = 0;
        ssize_t n = getline(buf, cap, in->f);
        if (n >= 0) {
            in->line++;
            if (n > 0 && (*buf)[n - 1] == '\n')
                (*buf)[--n] = 0;
            return n;
        }
        if (ferror(in->f))
            die("%s: read error: %s", in->name, strerror(errno ? errno : EIO));
        input_close(in);
    }
}
