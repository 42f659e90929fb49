/* STUB: replaced by the client work. */
#include <stdio.h>
int main(void) { fprintf(stderr, "nlpc: not implemented yet\n"); return 1; }
