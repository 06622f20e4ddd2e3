/* The floor of restarting after `kill -9`: a supervisor that does nothing but fork, exec and
 * wait. `floor PROGRAM [ARGS...]` runs PROGRAM and runs it again each time it ends; there is
 * no backoff, no logging, no reading of /proc, nothing that could be left out. Compiled by the
 * bench (gcc -O2 -static) and measured exactly as the supervisors are. */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 100;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[1], argv + 1);
            _exit(127);
        }
        if (pid < 0) {
            sleep(1);
            continue;
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        /* A program that cannot be exec'd would make this loop spin. */
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) sleep(1);
    }
}
