/* Operator commands: status, list, replay (against the running daemon's
 * administration endpoints) and check-lqs (against LogQS). */
#ifndef LQS_CLI_H
#define LQS_CLI_H
#include <stdbool.h>

bool cli_is_command(const char *arg);
/* argv[0] is the command name; config_path and listen come from options
 * given before it (either may be NULL; options after it win). Returns the
 * process exit status. */
int cli_main(int argc, char **argv, const char *config_path, const char *listen);

#endif
