/* File helpers: bounded reads, durable atomic writes, directory creation. */
#ifndef VTPMCA_FILEIO_H
#define VTPMCA_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vtpmca/err.h"

/* Reads a whole file (at most max_len bytes, else VTPMCA_ERR_LIMIT) into a malloc'd buffer
 * that is NUL-terminated one past *out_len for convenience. */
vtpmca_err vt_file_read(const char *path, size_t max_len, uint8_t **out, size_t *out_len,
                        vtpmca_diag *diag);

/* Writes a file atomically and durably (temp file, fsync, rename, fsync dir) with `mode`
 * (e.g. 0600 for keys). */
vtpmca_err vt_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                                vtpmca_diag *diag);

/* mkdir -p with the given mode for created directories. */
vtpmca_err vt_mkdir_p(const char *path, mode_t mode, vtpmca_diag *diag);

#endif
