/* SNS messages to POST /objects: the signature checked (SignatureVersion
 * 1, SHA1withRSA, and 2, SHA256withRSA) with the signing certificate
 * fetched over HTTPS only from a host matching sns_cert_host and cached; the
 * topic must be in sns_topics; a SubscriptionConfirmation is confirmed by
 * GETting its SubscribeURL, once that is checked the same way. */
#ifndef LQS_SNS_H
#define LQS_SNS_H
#include <stddef.h>

#include <jansson.h>

struct config;

/* 0 when the envelope is from an allowed topic and its signature is good;
 * -1 with why (for the 403 and the log). */
int sns_verify(const struct config *cfg, json_t *env, char *why, size_t whylen);
/* Confirm a (verified) SubscriptionConfirmation. 0, or -1 with why. */
int sns_confirm(const struct config *cfg, json_t *env, char *why, size_t whylen);
/* Drop the certificate cache (at exit). */
void sns_cache_clear(void);

/* The string SNS signs, from the envelope's fields (exposed for tests). */
char *sns_string_to_sign(json_t *env);

#endif
