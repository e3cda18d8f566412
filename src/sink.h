/* sink.h - an append-only line file shared by threads: the log and the
 * inference table.
 *
 * Lines never interleave: each is appended whole under the sink's mutex.
 * Batched lines are written in one write(2) per SINK_FLUSH_US or SINK_BATCH
 * bytes, whichever comes first, so a busy gateway does not pay a syscall per
 * request; unbatched lines flush the batch first and go out at once, so the
 * order holds. Someone must call sink_flush() now and then (the loop does,
 * on a timer) so that a quiet gateway's last lines appear.
 */
#ifndef SLUICE_SINK_H
#define SLUICE_SINK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SINK_BATCH 16384
#define SINK_FLUSH_US 50000

struct sink {
    pthread_mutex_t mu;
    int fd; /* -1 = closed: lines are dropped */
    size_t len;
    uint64_t since_us; /* when the oldest batched line arrived */
    char batch[2 * SINK_BATCH];
};

#define SINK_INIT                                                                                  \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, -1, 0, 0,                                                       \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Open path for appending ("-" = stdout). On a sink already open, the new
 * file replaces the old one atomically (dup2), so no line is lost. Returns 0
 * or -1 with errno set (the sink is unchanged). */
int sink_open(struct sink *s, const char *path);
/* Append one line (without its newline; one is added). A line is never cut:
 * one longer than SINK_BATCH goes straight to the file after the batch. */
void sink_write(struct sink *s, const char *line, size_t n, int batched);
void sink_flush(struct sink *s);
void sink_close(struct sink *s);

#endif
