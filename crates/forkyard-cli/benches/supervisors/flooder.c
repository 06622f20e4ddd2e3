/* A service that floods its standard output as `yes` does (8 KiB writes of "y\n") and tells
 * the bench the moment its stop signal arrives. On start it sends "PID STARTED_NS" to the
 * datagram socket named by FORKYARD_BENCH_SOCK; on SIGTERM (or SIGINT), first thing in the
 * handler, "stop PID ARRIVED_NS", then it exits. Times are CLOCK_MONOTONIC, as the bench's. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

static struct sockaddr_un addr = { .sun_family = AF_UNIX };
static int sock = -1;

/* Decimal digits of v at the end of buf; returns where they start. Async-signal-safe. */
static char *digits(unsigned long long v, char *end) {
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static void on_stop(int sig) {
    (void)sig;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long ns = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
    char buf[64], msg[80];
    char *t = digits(ns, buf + sizeof buf);
    size_t tl = (size_t)(buf + sizeof buf - t);
    char pbuf[24];
    char *p = digits((unsigned long long)getpid(), pbuf + sizeof pbuf);
    size_t pl = (size_t)(pbuf + sizeof pbuf - p);
    size_t n = 0;
    memcpy(msg + n, "stop ", 5);
    n += 5;
    memcpy(msg + n, p, pl);
    n += pl;
    msg[n++] = ' ';
    memcpy(msg + n, t, tl);
    n += tl;
    if (sock >= 0) sendto(sock, msg, n, 0, (struct sockaddr *)&addr, sizeof addr);
    _exit(0);
}

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const char *path = getenv("FORKYARD_BENCH_SOCK");
    if (path) {
        strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
        sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        char msg[64];
        int n = snprintf(msg, sizeof msg, "%d %llu", (int)getpid(),
                         (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
        sendto(sock, msg, (size_t)n, 0, (struct sockaddr *)&addr, sizeof addr);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigfillset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static char out[8192];
    for (size_t i = 0; i < sizeof out; i += 2) memcpy(out + i, "y\n", 2);
    for (;;) {
        if (write(1, out, sizeof out) < 0) {
            /* EPIPE or a closed output: keep the process alive for its stop signal. */
            pause();
        }
    }
}
