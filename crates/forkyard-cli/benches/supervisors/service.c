/* The timed service: the first thing it does is read CLOCK_MONOTONIC and send "PID STARTED_NS"
 * to the datagram socket named by FORKYARD_BENCH_SOCK, so that a restart is timed from the
 * kill to the replacement's first instruction. With FORKYARD_BENCH_NOTIFY_FD it then writes
 * a newline there (s6's notification-fd readiness). Then it waits for a signal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const char *path = getenv("FORKYARD_BENCH_SOCK");
    if (path) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "%d %llu", (int)getpid(),
                         (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sendto(fd, msg, n, 0, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
    }
    const char *notify = getenv("FORKYARD_BENCH_NOTIFY_FD");
    if (notify) {
        int fd = atoi(notify);
        write(fd, "\n", 1);
        close(fd);
    }
    for (;;) pause();
}
