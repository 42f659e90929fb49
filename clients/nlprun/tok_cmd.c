/* STUB: replaced by the tokenizer work. */
#include <stdio.h>
#include "clients/nlprun/nlprun.h"
int nlprun_tokenize(int argc, char **argv) { (void)argc, (void)argv; fprintf(stderr, "nlprun: tokenize not implemented\n"); return 1; }
int nlprun_detokenize(int argc, char **argv) { (void)argc, (void)argv; fprintf(stderr, "nlprun: detokenize not implemented\n"); return 1; }
