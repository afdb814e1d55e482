/* RFC 3339 date-times (section 5.6), as the admin API and the CLI read them. One reader of
 * the grammar; each caller applies its own policy (UTC only, leap seconds, the epoch). */
#ifndef VTPMCA_RFC3339_H
#define VTPMCA_RFC3339_H

#include <stdbool.h>
#include <stdint.h>

#include "vtpmca/err.h"

typedef struct {
    int year, month, day, hour, minute, second; /* second may be 60 (a leap second) */
    int millis;                                 /* the fraction, cut to milliseconds */
    bool utc;                                   /* "Z" rather than an offset */
    int offset_s;                               /* local time = UTC + offset_s; 0 for "Z" */
} vt_rfc3339;

/* Reads full-date "T" full-time: "T" and "Z" in either case, an optional fraction of one or
 * more digits, then "Z" or +hh:mm / -hh:mm, and nothing after. Checks the ranges: month,
 * the day within that month, hour <= 23, minute <= 59, second <= 60, offset hours <= 23
 * and minutes <= 59. VTPMCA_ERR_PARSE for anything else, VTPMCA_ERR_INVALID_ARG for NULL. */
vtpmca_err vt_rfc3339_parse(const char *text, vt_rfc3339 *out);

/* Unix milliseconds of a parsed time, the offset applied (a leap second counts as the next
 * minute's first). VTPMCA_ERR_PARSE when the calendar cannot represent it. */
vtpmca_err vt_rfc3339_unix_ms(const vt_rfc3339 *t, int64_t *out);

#endif
