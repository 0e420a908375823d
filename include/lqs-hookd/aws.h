/* AWS for the SQS poller: credentials in the usual order (the
 * configuration, its *_file and systemd credentials; the environment;
 * the EC2 instance role through IMDSv2, refreshed before it expires), and
 * SQS JSON-protocol calls signed by libcurl's own SigV4. Secrets are never
 * logged. */
#ifndef LQS_AWS_H
#define LQS_AWS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct config;
struct sqs_cfg;

struct aws_creds {
	char key_id[128];
	char secret[256];
	char token[2048];        /* "" : none */
	int64_t expires_ms;      /* 0: never (static keys) */
	char source[32];         /* configuration, environment, imds */
};

/* Find credentials. 0, or -1 with why (none anywhere; IMDS refused). */
int aws_creds_get(const struct config *cfg, struct aws_creds *out, char *why, size_t whylen);
void aws_creds_clear(struct aws_creds *c);

/* How an SQS call ended. */
enum sqs_fail { SQS_OK = 0, SQS_AUTH, SQS_THROTTLED, SQS_SERVER, SQS_NETWORK, SQS_CLIENT };

struct sqs_result {
	enum sqs_fail fail;
	long status;
	char error[512];         /* "" on success */
	json_t *doc;             /* the answer (owned) */
};

/* One call: target "ReceiveMessage", "DeleteMessageBatch",
 * "GetQueueAttributes", ...; body is the request's JSON (taken; QueueUrl
 * added). timeout_ms bounds it. */
void sqs_call(const struct sqs_cfg *q, const struct aws_creds *cr, const char *target, json_t *body, long timeout_ms,
	      struct sqs_result *out);
void sqs_result_clear(struct sqs_result *r);
/* A name for a failure kind (metrics, logs). */
const char *sqs_fail_name(enum sqs_fail f);

#endif
