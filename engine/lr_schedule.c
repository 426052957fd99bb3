/* Learning-rate schedules (lr_schedule.h). */
#include "lr_schedule.h"

#include <math.h>
#include <string.h>

int lr_shape(const char *name) {
    if (!strcmp(name, "constant")) return LR_CONSTANT;
    if (!strcmp(name, "cosine")) return LR_COSINE;
    if (!strcmp(name, "linear")) return LR_LINEAR;
    return -1;
}

double lr_at(LrShape shape, double peak, int k, int total, int warmup, double min_ratio) {
    if (k < warmup) return peak * (k + 1) / warmup;
    if (shape == LR_CONSTANT) return peak;
    double span = total - warmup;
    double p = span > 0 ? (k - warmup) / span : 1.0;
    if (p > 1) p = 1; /* updates past the planned total stay at the floor */
    if (shape == LR_LINEAR) return peak * (min_ratio + (1.0 - min_ratio) * (1.0 - p));
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + cos(M_PI * p)));
}
