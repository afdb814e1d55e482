#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 30

static double seconds_between(const struct timespec *from, const struct timespec *to)
{
    return (double)(to->tv_sec - from->tv_sec) + (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

static void draw(cli_progress *p, const struct timespec *now)
{
    size_t filled = p->total > 0 ? p->done * BAR_WIDTH / p->total : BAR_WIDTH;
    char bar[BAR_WIDTH + 1];
    memset(bar, '#', filled);
    memset(bar + filled, '.', BAR_WIDTH - filled);
    bar[BAR_WIDTH] = '\0';
    double elapsed = seconds_between(&p->started, now);
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    unsigned percent = p->total > 0 ? (unsigned)(p->done * 100 / p->total) : 100;
    /* \r and clear-to-end-of-line: the bar overwrites itself. */
    fprintf(stderr, "\r%s [%s] %zu/%zu (%u%%) %.0f/s\033[K", p->label, bar, p->done, p->total,
            percent, rate);
    fflush(stderr);
    p->last_draw = *now;
    p->drawn = true;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total)
{
    memset(p, 0, sizeof(*p));
    p->enabled = isatty(STDERR_FILENO) == 1;
    p->label = label;
    p->total = total;
    clock_gettime(CLOCK_MONOTONIC, &p->started);
    if (p->enabled)
        draw(p, &p->started);
}

void cli_progress_update(cli_progress *p, size_t done)
{
    p->done = done < p->total ? done : p->total;
    if (!p->enabled)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (seconds_between(&p->last_draw, &now) * 1000 >= PROGRESS_REDRAW_MS)
        draw(p, &now);
}

void cli_progress_finish(cli_progress *p)
{
    if (!p->enabled)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    draw(p, &now);
    fputc('\n', stderr);
    p->drawn = false;
}

double cli_progress_elapsed(const cli_progress *p)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return seconds_between(&p->started, &now);
}
