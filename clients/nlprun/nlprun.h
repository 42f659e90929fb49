/* nlprun: the engine (and tasks) without the daemon. One function per subcommand;
 * each returns the process exit code (0 ok, 1 runtime error, 2 usage error). */
#ifndef NLP_NLPRUN_H
#define NLP_NLPRUN_H

int nlprun_tokenize(int argc, char **argv);   /* tok_cmd.c  */
int nlprun_detokenize(int argc, char **argv); /* tok_cmd.c  */
int nlprun_generate(int argc, char **argv);   /* eng_cmd.c  */
int nlprun_logits(int argc, char **argv);     /* eng_cmd.c  */
/* summarize|translate|classify|qa|text2text; argv[0] is the task name. task_cmd.c */
int nlprun_task(int argc, char **argv);

#endif
