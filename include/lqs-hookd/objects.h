/* Object events: the shapes in which S3 announces new (or removed) objects
 * to an HTTP endpoint, read into one record per object. An S3 event
 * notification ({"Records":[…]}, keys form-encoded), an EventBridge event
 * (source aws.s3, keys raw) and an SNS message (its Message holds either,
 * as a string; raw delivery is the bare message). Keys come out as the
 * bytes S3 holds. */
#ifndef LQS_OBJECTS_H
#define LQS_OBJECTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* S3's own limits: keys up to 1024 bytes, bucket names up to 63. */
#define OBJECT_MAX_KEY 1024

struct object_rec {
	char kind[8];              /* "created" or "removed" */
	char event_name[64];       /* ObjectCreated:Put, Object Created/PutObject, ... */
	char bucket[64];
	char *key;                 /* decoded, NUL-terminated (S3 keys hold no NUL) */
	size_t key_len;
	int64_t size;              /* -1: not given */
	char etag[72];
	char version_id[256];
	char sequencer[64];
	int64_t event_ms;          /* when S3 says it happened; 0: not given */
	char region[32];
};

enum objects_kind {
	OBJECTS_RECORDS,           /* recs[0..n) (n may be 0: nothing but ignored types) */
	OBJECTS_TEST_EVENT,        /* s3:TestEvent: answered 200, nothing stored */
	OBJECTS_SNS_CONFIRM,       /* SNS SubscriptionConfirmation */
	OBJECTS_SNS_UNSUBSCRIBE,   /* SNS UnsubscribeConfirmation */
};

struct objects_msg {
	enum objects_kind kind;
	char format[16];           /* "s3", "eventbridge", "sns" (+ what it carried) */
	struct object_rec *recs;
	size_t n;
	size_t ignored;            /* records of event types other than created/removed */
	json_t *sns;               /* the SNS envelope (owned; for its signature), or NULL */
};

enum objects_result { OBJECTS_OK = 0, OBJECTS_SYNTAX, OBJECTS_INVALID, OBJECTS_NOMEM };

/* Parse a request body (at most max_records records). On OBJECTS_SYNTAX *detail is a string (the JSON
 * error and its position); on OBJECTS_INVALID a FastAPI-style list of
 * {loc, msg, type}, one per bad field. The caller owns *detail and frees
 * the message with objects_msg_free. */
enum objects_result objects_parse(const char *body, size_t len, size_t max_records, struct objects_msg *out,
				  json_t **detail);
void objects_msg_free(struct objects_msg *m);

/* application/x-www-form-urlencoded decoding, as S3 writes keys: '+' is a
 * space, %XX a byte. The result must be UTF-8 without NUL. Returns 0 with a
 * malloc'd *out, or -1 (malformed escape, NUL, not UTF-8, too long). */
int objects_form_decode(const char *in, char **out, size_t *outlen);

/* What makes two notifications of one object event the same: bucket, key,
 * the version (else the sequencer, else the etag) and the kind. */
char *objects_dedupe_key(const struct object_rec *r);

#endif
