/* Counters and histograms, rendered in the Prometheus text format. */
#ifndef LQS_METRICS_H
#define LQS_METRICS_H
#include <stdbool.h>
#include <stdint.h>

struct buf;

void metrics_http_request(const char *route, unsigned status);
/* outcome: accepted, duplicate or rejected; reason names why (or NULL). */
void metrics_event_received(const char *outcome, const char *reason);
/* One attempt ended. outcome: completed, failed (both final) or retrying. */
void metrics_attempt(const char *handler, const char *outcome, double seconds);
/* An unrouted event, finished as it was stored. */
void metrics_unrouted_finished(void);
/* Time from a POST /events's headers to its answer. */
void metrics_receive_duration(double seconds);
/* The last check of the LogQS settings. */
void metrics_lqs_check(bool ok);
/* A configuration reload ended (and the start, as a success). */
void metrics_config_reload(bool ok);
/* A sweep run ended: error_kind "" (ok) or lqs, auth, store, queue_full.
 * Sweep names are letters, digits, '-', '_' and '.' (no escaping needed). */
void metrics_sweep_run(const char *sweep, const char *error_kind, int64_t found, int64_t enqueued);
/* outcome: stored, duplicate, marker, not_routed, ignored, rejected, unavailable. */
void metrics_object_received(const char *outcome);
/* reason: count, quiet, max_age, marker. */
void metrics_batch_closed(const char *reason);
/* The SQS pollers: messages received, left unreadable, deleted; errors by
 * kind (auth, throttled, server, network, client, credentials); receive
 * latency. Queue names are section names (no escaping needed). */
void metrics_sqs_messages_received(const char *queue, int n);
void metrics_sqs_message(const char *queue, const char *outcome);
void metrics_sqs_deleted(const char *queue, int n);
void metrics_sqs_error(const char *queue, const char *kind);
void metrics_sqs_receive(const char *queue, double seconds);
void metrics_stream_subscribers(int n);
void metrics_stream_cut(void);
void metrics_stream_refused(void);
/* Change notifications sent to, or heard from, a shared PostgreSQL store. */
void metrics_store_notifications(bool sent, int n);
void metrics_archive_events(int n);
void metrics_archive_error(void);
void metrics_tls_expiry(int64_t epoch_s);
/* reason: max_connections. */
void metrics_connection_refused(const char *reason);
/* reason: header_timeout or read_timeout. */
void metrics_connection_cut(const char *reason);
void metrics_lqs_call(const char *method, int status, double seconds);
/* Gauges owned elsewhere (queue depth, workers): fn appends their
 * exposition text to out at each render. */
typedef void (*metrics_collect_fn)(void *ctx, struct buf *out);
void metrics_add_collector(metrics_collect_fn fn, void *ctx);
void metrics_clear_collectors(void);
/* The whole exposition; caller frees. */
char *metrics_render(void);

#endif
