#include "lqs-hookd/auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lqs-hookd/util.h"

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long base64_encode(const void *in, size_t n, char *out, size_t outlen)
{
	const unsigned char *p = in;
	size_t need = 4 * ((n + 2) / 3) + 1, o = 0;

	if (n > SIZE_MAX / 2 || need > outlen)
		return -1;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long base64_decode(const char *in, size_t n, unsigned char *out, size_t outlen)
{
	size_t o = 0;

	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=') {
				/* padding only in the last quantum, only at its end */
				if (i + 4 != n || k < 2)
					return -1;
				v[k] = 0;
				pad++;
			} else {
				if (pad)
					return -1;
				v[k] = b64val(c);
				if (v[k] < 0)
					return -1;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		size_t bytes = 3 - (size_t)pad;
		if (o + bytes > outlen)
			return -1;
		out[o++] = (unsigned char)(w >> 16);
		if (bytes > 1)
			out[o++] = (unsigned char)(w >> 8);
		if (bytes > 2)
			out[o++] = (unsigned char)w;
	}
	return (long)o;
}

bool ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile unsigned char *x = a, *y = b;
	size_t n = alen > blen ? alen : blen;
	unsigned diff = alen != blen;

	for (size_t i = 0; i < n; i++) {
		unsigned char cx = i < alen ? x[i] : 0;
		unsigned char cy = i < blen ? y[i] : 0;
		diff |= (unsigned)(cx ^ cy);
	}
	return diff == 0;
}

/* Returns the token after "Bearer " or NULL. */
static const char *bearer_token(const char *header)
{
	if (strncasecmp(header, "Bearer ", 7) != 0)
		return NULL;
	header += 7;
	if (!*header || *header == ' ' || *header == '\t')
		return NULL;
	return header;
}

#define AUTH_MAX_TOKEN 4096

enum auth_result auth_check_bearer(const char *header, char *const *secrets, int n_secrets)
{
	unsigned char decoded[AUTH_MAX_TOKEN];
	const char *tok;
	size_t toklen;
	long dlen;
	bool ok = false;

	if (!header)
		return AUTH_MISSING;
	tok = bearer_token(header);
	if (!tok)
		return AUTH_INVALID;
	toklen = strlen(tok);
	if (toklen > AUTH_MAX_TOKEN)
		return AUTH_INVALID;
	dlen = base64_decode(tok, toklen, decoded, sizeof(decoded));
	if (dlen < 0)
		return AUTH_INVALID;
	for (int i = 0; i < n_secrets; i++)
		ok |= ct_equal(decoded, (size_t)dlen, secrets[i], strlen(secrets[i]));
	/* base64 decodes to fewer bytes than it has: only those were written */
	secure_zero(decoded, toklen < sizeof(decoded) ? toklen : sizeof(decoded));
	return ok ? AUTH_OK : AUTH_INVALID;
}

enum auth_result auth_check_token(const char *header, const char *token)
{
	const char *tok;

	if (!header)
		return AUTH_MISSING;
	tok = bearer_token(header);
	if (!tok || strlen(tok) > AUTH_MAX_TOKEN)
		return AUTH_INVALID;
	return ct_equal(tok, strlen(tok), token, strlen(token)) ? AUTH_OK : AUTH_INVALID;
}

int auth_basic_bearer(const char *id, const char *secret, char *out, size_t outlen)
{
	char joined[1024];
	int n;
	long e;

	n = snprintf(joined, sizeof(joined), "%s:%s", id, secret);
	if (n < 0 || (size_t)n >= sizeof(joined) || outlen < 8)
		return -1;
	memcpy(out, "Bearer ", 7);
	e = base64_encode(joined, (size_t)n, out + 7, outlen - 7);
	secure_zero(joined, sizeof(joined));
	return e < 0 ? -1 : 0;
}

enum auth_result auth_check_objects(const char *header, char *const *secrets, int n_secrets, const char *user,
				    const char *password)
{
	unsigned char decoded[AUTH_MAX_TOKEN];
	const char *tok;
	size_t toklen;
	long dlen;
	bool ok = false;

	if (!header)
		return AUTH_MISSING;
	if (strncasecmp(header, "Basic ", 6) == 0) {
		char want[1024];
		int n;
		tok = header + 6;
		toklen = strlen(tok);
		if (!user || !password || toklen > AUTH_MAX_TOKEN)
			return AUTH_INVALID;
		dlen = base64_decode(tok, toklen, decoded, sizeof(decoded));
		n = snprintf(want, sizeof(want), "%s:%s", user, password);
		ok = dlen >= 0 && n > 0 && (size_t)n < sizeof(want) && ct_equal(decoded, (size_t)dlen, want, (size_t)n);
		secure_zero(want, sizeof(want));
		secure_zero(decoded, toklen < sizeof(decoded) ? toklen : sizeof(decoded));
		return ok ? AUTH_OK : AUTH_INVALID;
	}
	tok = bearer_token(header);
	if (!tok || strlen(tok) > AUTH_MAX_TOKEN)
		return AUTH_INVALID;
	toklen = strlen(tok);
	/* the secret as is (an API destination's own bearer token), or
	 * base64-wrapped as LogQS sends its hook secret */
	for (int i = 0; i < n_secrets; i++)
		ok |= ct_equal(tok, toklen, secrets[i], strlen(secrets[i]));
	dlen = base64_decode(tok, toklen, decoded, sizeof(decoded));
	for (int i = 0; dlen >= 0 && i < n_secrets; i++)
		ok |= ct_equal(decoded, (size_t)dlen, secrets[i], strlen(secrets[i]));
	secure_zero(decoded, toklen < sizeof(decoded) ? toklen : sizeof(decoded));
	return ok ? AUTH_OK : AUTH_INVALID;
}
