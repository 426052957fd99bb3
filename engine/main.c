/* denserl: the command-line entry point, dispatching to the subcommands. */
#include <stdio.h>
#include <string.h>
#include "build_info.h"
#include "commands.h"

static void usage(FILE *f) {
    fprintf(
        f, "denserl — RL training of language models with dense process rewards\n\n"
           "usage:\n"
           "  denserl train CONFIG.json [--set key.path=value ...]\n"
           "  denserl logprobs --model DIR --data IN.jsonl --out OUT.jsonl\n"
           "  denserl inspect DUMP.safetensors [--row I] [--rows N] [--plain]\n"
           "  denserl plot SPEC.json OUT.svg\n"
           "  denserl verify --task gsm8k|math (--answer A --response R | --data IN.jsonl)\n"
           "  denserl generate --model DIR (--prompt TEXT | --data IN.jsonl [--task T]) "
           "[options]\n"
           "  denserl eval --model DIR --data IN.jsonl --task gsm8k|math|verl|custom [--samples K] "
           "[options]\n"
           "  denserl bench CONFIG.json [--set k=v ...] [--shape NAME | --model-config DIR] "
           "[--warmup W] [--steps S] [--json OUT.json]\n"
           "  denserl score --prm DIR --ref DIR --data IN.jsonl [--out OUT.jsonl] [options]\n"
           "  (denserl generate --help and denserl eval --help list the options)\n"
           "  denserl --help | --version\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* progress goes to logs and pipes as it happens, not when a buffer fills */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("denserl %s (commit %s, %s)\n", denserl_version(), denserl_commit(),
               denserl_backends());
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "logprobs")) return cmd_logprobs(argc - 2, argv + 2);
    if (!strcmp(cmd, "plot")) return cmd_plot(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "verify")) return cmd_verify(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "score")) return cmd_score(argc - 2, argv + 2);
    fprintf(stderr,
            "error: unknown command '%s' (expected train, logprobs, inspect, plot, verify, "
            "generate, eval, bench or score)\n",
            cmd);
    return 2;
}
