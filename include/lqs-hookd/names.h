/* The vocabularies, each in one place: LogQS's ProcessState and ProcessType
 * (see the LogQS API notes), and the states of an event in the store. */
#ifndef LQS_NAMES_H
#define LQS_NAMES_H
#include <stdbool.h>
#include <stddef.h>

/* Event states in the store. */
#define ST_QUEUED "queued"
#define ST_RUNNING "running"
#define ST_RETRYING "retrying"
#define ST_COMPLETED "completed"
#define ST_FAILED "failed"

/* NULL-terminated lists. */
extern const char *const lqs_process_states[];
extern const char *const lqs_process_types[];
extern const char *const event_states[];

bool name_in(const char *const *list, const char *s);
/* The list joined by sep ("a|b|c", "a, b, c") into out. */
void names_join(const char *const *list, const char *sep, char *out, size_t n);

#endif
