/* sink.c - batched, thread-safe line files; see sink.h. */
#include "sink.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int sink_open(struct sink *s, const char *path)
{
    int fd;

    if (path == NULL || strcmp(path, "-") == 0)
        fd = dup(STDOUT_FILENO);
    else
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    if (s->fd < 0) {
        s->fd = fd;
    } else {
        dup2(fd, s->fd);
        close(fd);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0 && fd >= 0) {
        ssize_t r = write(fd, p, n);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            return; /* a failing log has nowhere to report to */
        }
        p += r;
        n -= (size_t)r;
    }
}

/* Called with mu held. */
static void flush_locked(struct sink *s)
{
    write_all(s->fd, s->batch, s->len);
    s->len = 0;
}

void sink_flush(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->len)
        flush_locked(s);
    pthread_mutex_unlock(&s->mu);
}

void sink_write(struct sink *s, const char *line, size_t n, int batched)
{
    uint64_t now;

    pthread_mutex_lock(&s->mu);
    if (s->fd < 0) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (n >= SINK_BATCH) {
        flush_locked(s);
        write_all(s->fd, line, n);
        write_all(s->fd, "\n", 1);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    now = now_us();
    if (s->len == 0)
        s->since_us = now;
    if (s->len + n + 1 > sizeof(s->batch))
        flush_locked(s);
    memcpy(s->batch + s->len, line, n);
    s->batch[s->len + n] = '\n';
    s->len += n + 1;
    if (!batched || s->len >= SINK_BATCH || now - s->since_us >= SINK_FLUSH_US)
        flush_locked(s);
    pthread_mutex_unlock(&s->mu);
}

void sink_close(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    flush_locked(s);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    pthread_mutex_unlock(&s->mu);
}
