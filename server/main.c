/* vtpmcad: parse the configuration, run the application until SIGTERM/SIGINT, exit.
 * Exit codes: 0 after a clean shutdown (and for --help/--version), 2 when startup fails. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "vtpmca/log.h"
#include "vtpmca/server_app.h"
#include "vtpmca/server_config.h"

#define EXIT_STARTUP_FAILURE 2

static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t hangup_seen = 0;

/* Only sets flags: everything else happens on the main thread. */
static void on_signal(int signo)
{
    if (signo == SIGHUP)
        hangup_seen = 1;
    else
        stop_signal = signo;
}

/* Blocks the signals before any thread exists (threads inherit the mask, so only the main
 * thread receives them) and installs the flag-setting handler. */
static int setup_signals(sigset_t *wait_mask)
{
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &handled, wait_mask) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    /* A client that disconnects mid-response must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    /* The mask sigsuspend installs while waiting: the original one minus our signals. */
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGINT);
    sigdelset(wait_mask, SIGHUP);
    return 0;
}

int main(int argc, char **argv)
{
    server_config config;
    server_config_action action;
    vtpmca_diag diag;
    vtpmca_diag_clear(&diag);
    if (server_config_from_args(argc, argv, &config, &action, &diag) != VTPMCA_OK) {
        fprintf(stderr, "vtpmcad: %s (see --help)\n", diag.msg);
        return EXIT_STARTUP_FAILURE;
    }
    if (action == SERVER_CONFIG_HELP)
        return server_config_write_help(stdout, "vtpmcad") == VTPMCA_OK ? 0 : 1;
    if (action == SERVER_CONFIG_VERSION) {
        printf("vtpmcad %s\n", server_version());
        return 0;
    }
    vtpmca_log_setup(config.log_level, config.log_format, 2);

    sigset_t wait_mask;
    if (setup_signals(&wait_mask) != 0) {
        fprintf(stderr, "vtpmcad: cannot install signal handlers\n");
        return EXIT_STARTUP_FAILURE;
    }
    server_app *app = NULL;
    vtpmca_err err = server_app_new(&config, &app, &diag);
    if (err == VTPMCA_OK)
        err = server_app_start(app, &diag);
    if (err != VTPMCA_OK) {
        fprintf(stderr, "vtpmcad: startup failed: %s\n", diag.msg);
        server_app_free(app);
        return EXIT_STARTUP_FAILURE;
    }

    while (!stop_signal) {
        sigsuspend(&wait_mask); /* atomically unblocks and waits: no lost wake-up */
        if (hangup_seen) {
            hangup_seen = 0;
            vtpmca_log(VTPMCA_LOG_INFO, "sighup", "message", "nothing to reload", NULL);
        }
    }
    vtpmca_log(VTPMCA_LOG_INFO, "shutdown", "signal", stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
               NULL);
    server_app_free(app);
    vtpmca_log(VTPMCA_LOG_INFO, "exit", "code", "0", NULL);
    return 0;
}
