/* nlprun: subcommand dispatch. Single-threaded. */
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "clients/libnlpclient/nlpclient.h" /* NLPC_VERSION */
#include "clients/nlprun/nlprun.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cmds[] = {
    { "tokenize", nlprun_tokenize,
      "--tokenizer FILE|DIR: stdin lines -> ids per line (special ids included)" },
    { "detokenize", nlprun_detokenize, "--tokenizer FILE|DIR: ids per line -> text per line" },
    { "generate", nlprun_generate, "--model DIR --ids 37,32099,1 [decoding options]" },
    { "logits", nlprun_logits, "--model DIR --ids ... --decoder-ids 0,... [--top K]" },
    { "summarize", nlprun_task, "--model DIR [task options]: run the task on stdin text" },
    { "translate", nlprun_task, "--model DIR --to LANG [--from LANG]" },
    { "classify", nlprun_task, "--model DIR --labels a,b,c [--multi-label]" },
    { "qa", nlprun_task, "--model DIR --question Q (context on stdin)" },
    { "text2text", nlprun_task, "--model DIR [decoding options]" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: nlprun COMMAND [options]   (nlprun COMMAND --help for details)\n"
               "       nlprun --version | --help\n\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-11s %s\n", cmds[i].name, cmds[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("nlprun %s\n", NLPC_VERSION);
        return 0;
    }
    if (argv[1][0] == '-') {
        fprintf(stderr, "nlprun: unknown option '%s' (options follow the command)\n", argv[1]);
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "nlprun: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
