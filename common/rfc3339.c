/* See include/vtpmca/rfc3339.h. */
#include "vtpmca/rfc3339.h"

#include <string.h>
#include <time.h>

static bool take_digits(const char **p, int count, int *out)
{
    int value = 0;
    for (int i = 0; i < count; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        value = value * 10 + (c - '0');
    }
    *p += count;
    *out = value;
    return true;
}

static bool take_char(const char **p, const char *allowed)
{
    if (**p == '\0' || strchr(allowed, **p) == NULL)
        return false;
    (*p)++;
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

vtpmca_err vt_rfc3339_parse(const char *text, vt_rfc3339 *out)
{
    if (text == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    vt_rfc3339 t = {0};
    const char *p = text;
    if (!take_digits(&p, 4, &t.year) || !take_char(&p, "-") || !take_digits(&p, 2, &t.month) ||
        !take_char(&p, "-") || !take_digits(&p, 2, &t.day) || !take_char(&p, "Tt") ||
        !take_digits(&p, 2, &t.hour) || !take_char(&p, ":") || !take_digits(&p, 2, &t.minute) ||
        !take_char(&p, ":") || !take_digits(&p, 2, &t.second))
        return VTPMCA_ERR_PARSE;
    if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > days_in_month(t.year, t.month) ||
        t.hour > 23 || t.minute > 59 || t.second > 60)
        return VTPMCA_ERR_PARSE;
    if (take_char(&p, ".")) {
        int digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 3)
                t.millis = t.millis * 10 + (*p - '0');
        }
        if (digits == 0)
            return VTPMCA_ERR_PARSE;
        for (; digits < 3; digits++)
            t.millis *= 10;
    }
    t.utc = take_char(&p, "Zz");
    if (!t.utc) {
        char sign = *p;
        int off_hour, off_minute;
        if (!take_char(&p, "+-") || !take_digits(&p, 2, &off_hour) || !take_char(&p, ":") ||
            !take_digits(&p, 2, &off_minute) || off_hour > 23 || off_minute > 59)
            return VTPMCA_ERR_PARSE;
        t.offset_s = (sign == '-' ? -1 : 1) * (off_hour * 3600 + off_minute * 60);
    }
    if (*p != '\0')
        return VTPMCA_ERR_PARSE;
    *out = t;
    return VTPMCA_OK;
}

vtpmca_err vt_rfc3339_unix_ms(const vt_rfc3339 *t, int64_t *out)
{
    if (t == NULL || out == NULL)
        return VTPMCA_ERR_INVALID_ARG;
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->month - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->minute,
                    .tm_sec = t->second};
    time_t seconds = timegm(&tm);
    if (seconds == (time_t)-1)
        return VTPMCA_ERR_PARSE;
    *out = ((int64_t)seconds - t->offset_s) * 1000 + t->millis;
    return VTPMCA_OK;
}
