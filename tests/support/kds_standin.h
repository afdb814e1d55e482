/* TEST-ONLY stand-in for AMD's Key Distribution Service: a libmicrohttpd server on
 * 127.0.0.1 (ephemeral port) that serves bodies registered by the test under an exact
 * request URI (path and query, as the client sends it) and answers 404 otherwise. It can
 * be told to delay every answer (timeout tests) or to answer a fixed status (e.g. 500),
 * and counts the requests it received. Thread-safe. */
#ifndef VTPMCA_TESTS_KDS_STANDIN_H
#define VTPMCA_TESTS_KDS_STANDIN_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmca/err.h"
#include "vtpmca/snp_report.h"

typedef struct kds_standin kds_standin;

vtpmca_err kds_standin_start(kds_standin **out);
/* Stops the server (waiting for in-flight requests, which stop delaying) and frees it. */
void kds_standin_stop(kds_standin *standin);

/* "http://127.0.0.1:PORT", for kds_config.base_url. */
const char *kds_standin_base_url(const kds_standin *standin);

/* Serves `body` (copied) with status 200 for requests whose URI equals `uri`, e.g.
 * "/vcek/v1/Milan/ab..?blSPL=03&...". Registering the same URI again replaces the body. */
vtpmca_err kds_standin_put(kds_standin *standin, const char *uri, const uint8_t *body, size_t len);
/* Serves a VCEK under the URI the KDS client builds for (product, chip_id, tcb). */
vtpmca_err kds_standin_put_vcek(kds_standin *standin, snp_product product,
                                const uint8_t chip_id[64], const snp_tcb *tcb, const uint8_t *der,
                                size_t der_len);

/* Every answer waits this long first (0 = none). */
void kds_standin_set_delay_ms(kds_standin *standin, unsigned delay_ms);
/* Every request is answered with this status and an empty body (0 = serve normally). */
void kds_standin_set_status(kds_standin *standin, unsigned status);

/* Number of requests received so far. */
unsigned kds_standin_request_count(const kds_standin *standin);
/* Copies the URI of the most recent request (empty string before any). */
void kds_standin_last_uri(kds_standin *standin, char *buf, size_t size);

#endif
