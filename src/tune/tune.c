/* tune.c - sluice-tune's main: subcommand dispatch, help, progress bar and
 * command-line number parsing. Subcommands register themselves (tune.h,
 * TUNE_COMMAND), so this file does not know them.
 */
#include "tune.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TUNE_MAX_CMDS 16

static const struct tune_cmd *cmds[TUNE_MAX_CMDS];
static size_t ncmds;

void tune_register(const struct tune_cmd *cmd)
{
    sl_assert(ncmds < TUNE_MAX_CMDS);
    cmds[ncmds++] = cmd;
}

/* Constructors run in link order; list commands by name so the help text
 * does not depend on it. */
static int cmd_cmp(const void *a, const void *b)
{
    const struct tune_cmd *x = *(const struct tune_cmd *const *)a;
    const struct tune_cmd *y = *(const struct tune_cmd *const *)b;

    return strcmp(x->name, y->name);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: sluice-tune COMMAND [OPTIONS]\n"
                 "\n"
                 "Fit FrugalGPT-style cascades for sluice on labelled data: train the\n"
                 "`learned` scorers, search model orders, scorers and thresholds, and\n"
                 "print the accuracy/cost frontier with a ready gateway.conf routes block.\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; i < ncmds; i++)
        fprintf(out, "  %-10s %s\n", cmds[i]->name, cmds[i]->summary);
    fprintf(out, "\n`sluice-tune COMMAND --help` describes each. Version " SLUICE_VERSION ".\n");
}

int main(int argc, char **argv)
{
    qsort(cmds, ncmds, sizeof(cmds[0]), cmd_cmp);
    if (argc < 2) {
        usage(stderr);
        return TUNE_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return TUNE_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("sluice-tune " SLUICE_VERSION "\n");
        return TUNE_EXIT_OK;
    }
    for (size_t i = 0; i < ncmds; i++)
        if (strcmp(argv[1], cmds[i]->name) == 0)
            return cmds[i]->main_fn(argc - 1, argv + 1);
    fprintf(stderr, "sluice-tune: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return TUNE_EXIT_USAGE;
}

/* ---- progress and messages ---- */

/* A bar is drawn on stderr's current line and not yet ended. */
static int bar_open;

static void bar_close(void)
{
    if (bar_open) {
        fputc('\n', stderr);
        bar_open = 0;
    }
}

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
    fflush(stdout);
    bar_close();
    fprintf(stderr, "sluice-tune: %s", prefix);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void tune_msg(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
}

void tune_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmsg("warning: ", fmt, ap);
    va_end(ap);
}

void tune_progress_start(struct tune_progress *p, const char *what, uint64_t total)
{
    p->what = what;
    p->total = total ? total : 1;
    p->done = 0;
    p->last_us = 0;
    p->tty = isatty(STDERR_FILENO);
    if (!p->tty)
        tune_msg("%s...", what);
}

static void progress_draw(struct tune_progress *p)
{
    int width = 30;
    int fill = (int)((double)width * (double)p->done / (double)p->total);

    if (fill > width)
        fill = width;
    /* Whatever stdout has buffered goes out first, on its own lines. */
    if (!bar_open)
        fflush(stdout);
    fprintf(stderr, "\r%-24s [%.*s%*s] %3d%%", p->what, fill, "##############################",
            width - fill, "", (int)(100.0 * (double)p->done / (double)p->total));
    fflush(stderr);
    bar_open = 1;
}

void tune_progress_step(struct tune_progress *p, uint64_t n)
{
    uint64_t now;

    p->done += n;
    if (!p->tty)
        return;
    /* Redraw at most 10 times a second: a terminal is slower than the loop. */
    now = now_us();
    if (now - p->last_us < 100000)
        return;
    p->last_us = now;
    progress_draw(p);
}

void tune_progress_end(struct tune_progress *p)
{
    if (!p->tty)
        return;
    p->done = p->total;
    progress_draw(p);
    bar_close();
}

/* ---- option values ---- */

int tune_opt_long(const char *opt, const char *v, long min, long max, long *out)
{
    if (parse_long(v, min, max, out) < 0) {
        fprintf(stderr, "sluice-tune: %s: expected an integer in %ld..%ld, got \"%s\"\n", opt, min,
                max, v);
        return -1;
    }
    return 0;
}

int tune_opt_double(const char *opt, const char *v, double *out)
{
    if (parse_double(v, out) < 0) {
        fprintf(stderr, "sluice-tune: %s: expected a number, got \"%s\"\n", opt, v);
        return -1;
    }
    return 0;
}

int tune_opt_u64(const char *opt, const char *v, uint64_t *out)
{
    char *end;
    unsigned long long x;

    errno = 0;
    if (v[0] < '0' || v[0] > '9' || (x = strtoull(v, &end, 10), errno != 0) || *end != '\0') {
        fprintf(stderr, "sluice-tune: %s: expected a non-negative integer, got \"%s\"\n", opt, v);
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}
