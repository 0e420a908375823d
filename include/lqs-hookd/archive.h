/* The partitioned archive of finished events (see src/store/archive.c). */
#ifndef LQS_ARCHIVE_H
#define LQS_ARCHIVE_H
#include <stdbool.h>
#include <stddef.h>

struct store;
struct archiver;

/* Make dir if needed, cut the torn last line of this host's files (with
 * gzip: compress those of hours long over), and start writing; NULL with
 * err when dir cannot be used. */
struct archiver *archiver_start(struct store *st, const char *dir, bool gzip, char *err, size_t errlen);
/* Archive what has finished, then stop. */
void archiver_stop(struct archiver *a);
/* Cut a torn last line from each of host's files under dir; returns how
 * many files were cut, or -1. */
int archive_repair(const char *dir, const char *host);
/* This host's name as it appears in file names. */
void archive_host_name(char *out, size_t n);

#endif
