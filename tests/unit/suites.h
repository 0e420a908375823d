#ifndef LQS_TEST_SUITES_H
#define LQS_TEST_SUITES_H
#include <check.h>

Suite *suite_buf(void);
Suite *suite_auth(void);
Suite *suite_config(void);
Suite *suite_event(void);
Suite *suite_lqs(void);
Suite *suite_stats(void);
Suite *suite_store(void);
Suite *suite_http(void);
Suite *suite_objects(void);
Suite *suite_batches(void);

#endif
