/* Running out of GPU memory is reported, not crashed on: a device allocation larger than any
 * GPU (1 PB) must end the process with one "out of GPU memory" line naming the sizes and exit
 * status 2, not an abort. The allocation runs in a child process, forked before anything in
 * this process touches CUDA (a CUDA context does not survive fork); the child says 77 when
 * no GPU answers, which the parent passes on as ctest's skip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "runtime/backend.h"
#include "testutil.h"

static int child(void) {
#ifndef DENSERL_CUDA
    return 77;
#else
    if (!backend_cuda_available()) return 77;
    void *p = be_alloc(BACKEND_CUDA, (size_t)1 << 50);
    be_free(BACKEND_CUDA, p);
    return 0; /* reached only if 1 PB was granted */
#endif
}

int main(void) {
    int fd[2];
    if (pipe(fd) != 0) return 1;
    fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        _exit(child());
    }
    close(fd[1]);
    char err[4096] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof err - 1 && (r = read(fd[0], err + got, sizeof err - 1 - got)) > 0)
        got += (size_t)r;
    close(fd[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        printf("SKIP no GPU answered (or built without CUDA): nothing checked\n");
        return 77;
    }
    int lines = 0;
    for (size_t i = 0; i < got; i++) lines += err[i] == '\n';
    printf("child stderr: %s", err);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 2, "a 1 PB device allocation exits with 2");
    check(strstr(err, "out of GPU memory") != NULL && strstr(err, "GB free") != NULL,
          "it says out of GPU memory, with the sizes");
    check(lines == 1, "in one line (got %d)", lines);
    return test_summary();
}
