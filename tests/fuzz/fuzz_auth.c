/* libFuzzer: the Authorization header parser, base64 and the comparisons. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lqs-hookd/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *hdr = malloc(size + 1);
	char *secrets[] = { "fuzz-secret", "", "other" };
	unsigned char out[256];
	char enc[1024];

	if (!hdr)
		return 0;
	memcpy(hdr, data, size);
	hdr[size] = '\0';   /* headers reach us NUL-terminated */
	auth_check_bearer(hdr, secrets, 3);
	auth_check_token(hdr, "fuzz-token");
	base64_decode((const char *)data, size, out, sizeof(out));
	if (size < 700)
		base64_encode(data, size, enc, sizeof(enc));
	free(hdr);
	return 0;
}
