#include "vtpmca/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

vtpmca_err vt_file_read(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                        vtpmca_diag *diag)
{
    if (path == NULL || out == NULL || out_len == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "file read: missing argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return VTPMCA_ERR_NOMEM;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max_len) {
                break;
            }
            uint8_t *bigger = realloc(buf, cap * 2 + 1);
            if (bigger == NULL) {
                free(buf);
                close(fd);
                return VTPMCA_ERR_NOMEM;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot read %s: %s", path, strerror(e));
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (len > max_len) {
        free(buf);
        return vtpmca_fail(diag, VTPMCA_ERR_LIMIT, "%s is larger than %zu bytes", path, max_len);
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return VTPMCA_OK;
}

static vtpmca_err fsync_parent(const char *path, vtpmca_diag *diag)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return VTPMCA_ERR_NOMEM;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (dfd < 0)
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot open parent of %s: %s", path,
                           strerror(errno));
    int rc = fsync(dfd);
    close(dfd);
    return rc == 0 ? VTPMCA_OK
                   : vtpmca_fail(diag, VTPMCA_ERR_IO, "fsync of parent of %s failed", path);
}

vtpmca_err vt_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                                vtpmca_diag *diag)
{
    if (path == NULL || (data == NULL && len > 0))
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "file write: missing argument");
    size_t tmp_len = strlen(path) + 16;
    char *tmp = malloc(tmp_len);
    if (tmp == NULL)
        return VTPMCA_ERR_NOMEM;
    snprintf(tmp, tmp_len, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        vtpmca_err e = vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot create temp file for %s: %s", path,
                                   strerror(errno));
        free(tmp);
        return e;
    }
    vtpmca_err err = VTPMCA_OK;
    if (fchmod(fd, mode) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_IO, "chmod %s: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t left = len;
    while (err == VTPMCA_OK && left > 0) {
        ssize_t put = write(fd, p, left);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0) {
            err = vtpmca_fail(diag, VTPMCA_ERR_IO, "write %s: %s", tmp, strerror(errno));
            break;
        }
        p += put;
        left -= (size_t)put;
    }
    if (err == VTPMCA_OK && fsync(fd) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && err == VTPMCA_OK)
        err = vtpmca_fail(diag, VTPMCA_ERR_IO, "close %s: %s", tmp, strerror(errno));
    if (err == VTPMCA_OK && rename(tmp, path) != 0)
        err = vtpmca_fail(diag, VTPMCA_ERR_IO, "rename to %s: %s", path, strerror(errno));
    if (err != VTPMCA_OK)
        unlink(tmp);
    free(tmp);
    return err == VTPMCA_OK ? fsync_parent(path, diag) : err;
}

vtpmca_err vt_mkdir_p(const char *path, mode_t mode, vtpmca_diag *diag)
{
    if (path == NULL || path[0] == '\0')
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "mkdir: empty path");
    char *copy = strdup(path);
    if (copy == NULL)
        return VTPMCA_ERR_NOMEM;
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, mode) != 0 && errno != EEXIST) {
                vtpmca_err e =
                    vtpmca_fail(diag, VTPMCA_ERR_IO, "mkdir %s: %s", copy, strerror(errno));
                free(copy);
                return e;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(copy);
    return VTPMCA_OK;
}
