/* Timing and progress lines. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include "log.h"

double time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_init(Progress *p, const char *label, int total) {
    p->t0 = time_now();
    p->total = total;
    p->label = label;
}

void format_duration(double s, char *buf, int n) {
    if (s < 0) s = 0;
    if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, n, "%.1fs", s);
}

void progress_print(Progress *p, int step, double units_done, const char *unit, const char *fmt,
                    ...) {
    double el = time_now() - p->t0;
    char msg[512], eta[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    format_duration(step > 0 ? el / step * (p->total - step) : 0, eta, sizeof eta);
    printf("%s %*d/%d | %s | %.0f %s/s | ETA %s\n", p->label, step < 10000 ? 4 : 6, step, p->total,
           msg, el > 0 ? units_done / el : 0.0, unit, eta);
    fflush(stdout);
}
