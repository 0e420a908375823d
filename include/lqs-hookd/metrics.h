/* Counters and histograms, rendered in the Prometheus text format. */
#ifndef LQS_METRICS_H
#define LQS_METRICS_H

struct store;
struct workers;

void metrics_http_request(const char *route, unsigned status);
/* outcome: accepted, duplicate or rejected; reason names why (or NULL). */
void metrics_event_received(const char *outcome, const char *reason);
/* outcome: completed, failed or retrying. */
void metrics_event_finished(const char *handler, const char *outcome, double seconds);
/* reason: max_connections. */
void metrics_connection_refused(const char *reason);
/* reason: header_timeout or read_timeout. */
void metrics_connection_cut(const char *reason);
void metrics_lqs_call(const char *method, int status, double seconds);
/* The whole exposition; caller frees. */
char *metrics_render(struct store *st, struct workers *w);

#endif
