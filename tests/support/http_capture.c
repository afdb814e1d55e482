/* TEST-ONLY libcurl callback helpers (see http_capture.h). */
#include "http_capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t http_capture_append(char **buf, size_t *len, const char *data, size_t n)
{
    char *bigger = realloc(*buf, *len + n + 1);
    if (bigger == NULL)
        return 0;
    *buf = bigger;
    memcpy(bigger + *len, data, n);
    *len += n;
    bigger[*len] = '\0';
    return n;
}

void http_capture_header(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t name_len = strlen(name);
    if (len <= name_len || strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
        return;
    const char *v = line + name_len + 1;
    while (v < line + len && *v == ' ')
        v++;
    size_t vl = (size_t)(line + len - v);
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    snprintf(out, size, "%.*s", (int)vl, v);
}
