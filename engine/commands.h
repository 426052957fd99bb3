/* The subcommands of the denserl command line. Each returns a process exit code:
 * 0 on success, 2 (after printing "error: ...") on bad user input. */
#pragma once

int cmd_train(int argc, char **argv);
int cmd_logprobs(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_score(int argc, char **argv);
