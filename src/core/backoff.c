#include "lqs-hookd/backoff.h"

#include <math.h>

double backoff_delay(double base, int retry_index, double jitter01)
{
	int i = retry_index < 0 ? 0 : retry_index > 30 ? 30 : retry_index;

	return base * ldexp(1.0, i) * (1.0 + 0.25 * jitter01);
}
