/* cli.h - what the subcommands of the diffaug tool share: the command table entry, option
 * parsing helpers and error reporting. */
#ifndef DA_CLI_H
#define DA_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "diffaug.h"

typedef struct cli_command {
    const char *name, *help;
    int (*fn)(int argc, char **argv);
} cli_command;

int cmd_devices(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_fractals(int argc, char **argv);
int cmd_manifest(int argc, char **argv);
int cmd_mkdataset(int argc, char **argv);
int cmd_sheet(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_augment(int argc, char **argv);
int cmd_caption(int argc, char **argv);

/* Exit codes: 0 success, 1 the job failed (bad input, I/O), 2 bad command line. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Print "diffaug <cmd>: <message>" for an error record and return CLI_FAIL. */
int cli_fail(const char *cmd, const da_error *err);
/* Parse helpers: print a usage error naming the option and return false on bad text. */
bool cli_parse_int(const char *cmd, const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out);
bool cli_parse_float(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out);

#endif
