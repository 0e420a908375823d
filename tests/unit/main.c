#include <stdlib.h>

#include <curl/curl.h>

#include "suites.h"

int main(void)
{
	SRunner *sr = srunner_create(suite_buf());
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	srunner_add_suite(sr, suite_auth());
	srunner_add_suite(sr, suite_config());
	srunner_add_suite(sr, suite_event());
	srunner_add_suite(sr, suite_lqs());
	srunner_add_suite(sr, suite_stats());
	srunner_add_suite(sr, suite_store());
	srunner_add_suite(sr, suite_http());
	srunner_add_suite(sr, suite_objects());
	srunner_add_suite(sr, suite_batches());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
