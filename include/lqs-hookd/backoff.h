/* The one backoff rule, for LogQS call retries and event attempts alike. */
#ifndef LQS_BACKOFF_H
#define LQS_BACKOFF_H

/* base * 2^retry_index, stretched by up to 25 % of jitter (jitter01 in
 * [0, 1]): never sooner than the LogQS client would retry, never in
 * lock-step with other clients. The exponent stops growing at 30. */
double backoff_delay(double base, int retry_index, double jitter01);

#endif
