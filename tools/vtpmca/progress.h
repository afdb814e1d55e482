/* A progress bar for long CLI operations (bulk enrollment): drawn on stderr when stderr is a
 * terminal, at most every PROGRESS_REDRAW_MS, and nothing at all otherwise, so that scripts
 * and logs see only the summary line. */
#ifndef VTPMCA_CLI_PROGRESS_H
#define VTPMCA_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define PROGRESS_REDRAW_MS 100

typedef struct {
    bool enabled;      /* stderr is a terminal */
    bool drawn;        /* something is on the line (finish ends it) */
    const char *label; /* e.g. "enrolling" */
    size_t total;
    size_t done;
    struct timespec started;
    struct timespec last_draw;
} cli_progress;

/* Starts a bar for `total` items (label: a static string). */
void cli_progress_start(cli_progress *p, const char *label, size_t total);
/* Sets the number of items done (redrawn when due). */
void cli_progress_update(cli_progress *p, size_t done);
/* Draws the final state and ends the line. */
void cli_progress_finish(cli_progress *p);
/* Seconds since cli_progress_start. */
double cli_progress_elapsed(const cli_progress *p);

#endif
