/* libFuzzer: the configuration file parser and validation. */
#include <stdint.h>
#include <stdlib.h>

#include "lqs-hookd/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* only the input decides */
	unsetenv("LQS_EXPECTED_SECRET");
	unsetenv("CREDENTIALS_DIRECTORY");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct config_overrides ov = { .client = true };
	char err[4096];

	config_load_buffer(&cfg, "fuzz.conf", (const char *)data, size, &ov, err, sizeof(err));
	config_free(&cfg);
	return 0;
}
