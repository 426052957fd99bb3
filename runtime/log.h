/* Wall-clock timing and the console progress line (step, rate, ETA). */
#pragma once

/* Seconds since an arbitrary fixed point (monotonic). */
double time_now(void);

typedef struct {
    double t0;
    int total;
    const char *label;
} Progress;

void progress_init(Progress *p, const char *label, int total);
/* Prints "label step/total | <message> | <rate> <unit>/s | ETA ..." on one line; rate is
 * units done since progress_init divided by the elapsed time. */
void progress_print(Progress *p, int step, double units_done, const char *unit, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
/* Formats seconds as "1h02m", "3m05s" or "12.3s". */
void format_duration(double s, char *buf, int n);
