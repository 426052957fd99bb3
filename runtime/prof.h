/* Named ranges around the phases of a step (NVTX), so that a profiler can show them or
 * restrict itself to one: `ncu --nvtx --nvtx-include "policy_update/" ...`. The NVTX header
 * is header-only and costs nothing unless a profiler is attached; without CUDA these are
 * no-ops. */
#pragma once

#ifdef DENSERL_CUDA
#include <nvtx3/nvToolsExt.h>
static inline void prof_push(const char *name) {
    nvtxRangePushA(name);
}
static inline void prof_pop(void) {
    nvtxRangePop();
}
#else
static inline void prof_push(const char *name) {
    (void)name;
}
static inline void prof_pop(void) {}
#endif
