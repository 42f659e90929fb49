/* STUB: replaced by the engine work. */
#include <stdio.h>
#include "clients/nlprun/nlprun.h"
int nlprun_generate(int argc, char **argv) { (void)argc, (void)argv; fprintf(stderr, "nlprun: generate not implemented\n"); return 1; }
int nlprun_logits(int argc, char **argv) { (void)argc, (void)argv; fprintf(stderr, "nlprun: logits not implemented\n"); return 1; }
