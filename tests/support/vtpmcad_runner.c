/* TEST-ONLY process helpers for end-to-end tests (see vtpmcad_runner.h). */
#include "vtpmcad_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vtpmca/fileio.h"

extern char **environ;

#define MAX_ARGS 64
#define LOG_TAIL 200

double runner_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void runner_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *vtpmcad_runner_bin_dir(void)
{
    const char *dir = getenv("VTPMCA_BIN_DIR");
    return dir != NULL && dir[0] != '\0' ? dir : VTPMCA_BINARY_DIR;
}

/* Spawns <bin dir>/program with args, stdout and stderr to the given files. */
static pid_t spawn(const char *program, const char *const *args, const char *out_path,
                   const char *err_path)
{
    char bin[1024];
    snprintf(bin, sizeof(bin), "%s/%s", vtpmcad_runner_bin_dir(), program);
    const char *argv[MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = bin;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < MAX_ARGS + 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, bin, &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0 ? pid : -1;
}

/* Waits up to timeout_s: the exit status, or -1 (signal, or still running). */
static int wait_exit(pid_t pid, double timeout_s, int *still_running)
{
    double deadline = runner_now_s() + timeout_s;
    *still_running = 0;
    for (;;) {
        int status = 0;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (done < 0 && errno != EINTR)
            return -1;
        if (runner_now_s() > deadline) {
            *still_running = 1;
            return -1;
        }
        runner_sleep_ms(5);
    }
}

char *runner_read_text(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (vt_file_read(path, 1 << 24, &data, &len, NULL) != VTPMCA_OK)
        return NULL;
    return (char *)data;
}

static vtpmca_err startup_failed(vtpmcad_proc *d, const char *what, vtpmca_diag *diag)
{
    char *log = runner_read_text(d->log_path);
    size_t len = log != NULL ? strlen(log) : 0;
    vtpmca_err err =
        vtpmca_fail(diag, VTPMCA_ERR_INTERNAL, "vtpmcad %s: %s", what,
                    log != NULL ? log + (len > LOG_TAIL ? len - LOG_TAIL : 0) : "(no log)");
    free(log);
    return err;
}

vtpmca_err vtpmcad_start(vtpmcad_proc *d, const char *work_dir, const char *name,
                         const char *state_dir, const char *const *extra, vtpmca_diag *diag)
{
    if (d == NULL || work_dir == NULL || name == NULL || state_dir == NULL)
        return vtpmca_fail(diag, VTPMCA_ERR_INVALID_ARG, "vtpmcad_start: missing argument");
    memset(d, 0, sizeof(*d));
    snprintf(d->log_path, sizeof(d->log_path), "%s/%s.log", work_dir, name);
    snprintf(d->port_file, sizeof(d->port_file), "%s/%s.port", work_dir, name);
    unlink(d->port_file);
    const char *args[MAX_ARGS + 1] = {
        "--state-dir", state_dir, "--port", "0", "--port-file", d->port_file, "--threads", "2",
        /* New policy versions are visible at once (deterministic tests). */
        "--policy-refresh-ms", "0", "--shutdown-grace-ms", "4000", NULL};
    size_t n = 0;
    while (args[n] != NULL)
        n++;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < MAX_ARGS; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    d->pid = spawn("vtpmcad", args, "/dev/null", d->log_path);
    if (d->pid <= 0) {
        d->pid = 0;
        return vtpmca_fail(diag, VTPMCA_ERR_IO, "cannot start %s/vtpmcad",
                           vtpmcad_runner_bin_dir());
    }
    double deadline = runner_now_s() + 15;
    for (;;) {
        char *text = runner_read_text(d->port_file);
        if (text != NULL && strchr(text, '\n') != NULL) {
            d->port = (unsigned)strtoul(text, NULL, 10);
            free(text);
            break;
        }
        free(text);
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            return startup_failed(d, "exited during start-up", diag);
        }
        if (runner_now_s() > deadline) {
            vtpmcad_stop(d);
            return startup_failed(d, "wrote no port file", diag);
        }
        runner_sleep_ms(20);
    }
    if (d->port == 0 || d->port > 65535) {
        vtpmcad_stop(d);
        return vtpmca_fail(diag, VTPMCA_ERR_PARSE, "vtpmcad wrote a bad port file");
    }
    snprintf(d->url, sizeof(d->url), "http://127.0.0.1:%u", d->port);
    return VTPMCA_OK;
}

int vtpmcad_stop(vtpmcad_proc *d)
{
    if (d == NULL || d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int still_running = 0;
    int code = wait_exit(d->pid, 5.0, &still_running);
    if (still_running) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    d->pid = 0;
    return code;
}

int run_program(const char *program, const char *const *args, double timeout_s, char **out,
                char **err)
{
    char out_path[] = "/tmp/vtpmca-run-out-XXXXXX", err_path[] = "/tmp/vtpmca-run-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    int code = -1;
    pid_t pid = out_fd >= 0 && err_fd >= 0 ? spawn(program, args, out_path, err_path) : -1;
    if (pid > 0) {
        int still_running = 0;
        code = wait_exit(pid, timeout_s, &still_running);
        if (still_running) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
    if (out != NULL)
        *out = runner_read_text(out_path);
    if (err != NULL)
        *err = runner_read_text(err_path);
    unlink(out_path);
    unlink(err_path);
    return code;
}
