/* STUB: replaced by the daemon work. */
#include <stdio.h>
int main(void) { fprintf(stderr, "nlpd: not implemented yet\n"); return 1; }
