/* STUB: replaced by the tasks work. */
#include <stdio.h>
#include "clients/nlprun/nlprun.h"
int nlprun_task(int argc, char **argv) { (void)argc; fprintf(stderr, "nlprun: %s not implemented\n", argv[0]); return 1; }
