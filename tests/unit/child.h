/* child.h - helpers for unit tests of fatal errors and of Python cross-checks. */
#ifndef BP_TEST_CHILD_H
#define BP_TEST_CHILD_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn(arg) in a child process; return its exit status (128 + signal when
 * killed) and its whole stderr in err. */
__attribute__((unused)) static int run_in_child(void (*fn)(const void *), const void *arg, char *err,
                                                size_t errlen)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn(arg);
        exit(0);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n < errlen - 1 && (r = read(fd[0], err + n, errlen - 1 - n)) > 0)
        n += r;
    err[n] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A diagnostic is one line, ending in a newline. */
__attribute__((unused)) static int one_line(const char *err)
{
    const char *nl = strchr(err, '\n');
    return nl && nl[1] == 0;
}

/* system(3) on a formatted command line; returns the exit status. */
__attribute__((unused, format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(stdout);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
