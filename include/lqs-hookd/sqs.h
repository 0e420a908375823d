/* The SQS source: pollers that receive S3 object events from a queue (raw
 * S3 notifications, SNS envelopes, EventBridge events), store their records
 * through the intake like POST /objects does, and delete a message only once
 * every record it holds is durable. A message that cannot be read is left
 * for the queue's redrive policy. */
#ifndef LQS_SQS_H
#define LQS_SQS_H
#include <stdbool.h>
#include <stddef.h>

struct intake;
struct config;
struct sqs_pollers;

struct sqs_pollers *sqs_start(struct intake *in);
/* Stop receiving, finish what was received, end the threads. */
void sqs_stop(struct sqs_pollers *p);
/* Whether every queue's last call worked (/readyz); msg says which not. */
bool sqs_ok(struct sqs_pollers *p, char *msg, size_t msglen);
/* The same for the pollers running now (none: true). */
bool sqs_running_ok(char *msg, size_t msglen);
/* `check-sqs`: one signed call per queue. 0 when all work. */
int sqs_check(const struct config *cfg);

#endif
