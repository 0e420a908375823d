/* Hook authentication: "Authorization: Bearer <base64(secret)>". */
#ifndef LQS_AUTH_H
#define LQS_AUTH_H
#include <stdbool.h>
#include <stddef.h>

enum auth_result { AUTH_OK = 0, AUTH_MISSING, AUTH_INVALID };

/* Standard base64 with padding. Returns bytes written (excluding NUL) or -1
 * when out is too small. */
long base64_encode(const void *in, size_t n, char *out, size_t outlen);
/* Strict standard base64 (padding required, no whitespace). Returns decoded
 * length or -1 on malformed input or overflow of out. */
long base64_decode(const char *in, size_t n, unsigned char *out, size_t outlen);

/* Constant-time comparison: time depends only on the lengths' maximum. */
bool ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Check an Authorization header value (NULL when absent) against every
 * accepted secret. The scheme is matched case-insensitively (RFC 9110);
 * exactly one space separates it from the token. Every secret is compared,
 * so timing does not tell which one matched. */
enum auth_result auth_check_bearer(const char *header, char *const *secrets, int n_secrets);

/* POST /objects: "Bearer <secret>" (as is, or base64 as for hooks) of an
 * accepted secret, or "Basic base64(user:password)" when a user is set. */
enum auth_result auth_check_objects(const char *header, char *const *secrets, int n_secrets, const char *user,
				    const char *password);

/* Plain bearer token check (admin token, not base64-wrapped). */
enum auth_result auth_check_token(const char *header, const char *token);

/* "Bearer base64(id:secret)" for the LogQS API. Returns 0 or -1. */
int auth_basic_bearer(const char *id, const char *secret, char *out, size_t outlen);

#endif
