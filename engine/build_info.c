/* Build identity (build_info.h); DENSERL_COMMIT comes from the generated header. */
#include "build_info.h"

#include "build_info_gen.h"

const char *denserl_version(void) {
    return "0.1.0";
}

const char *denserl_commit(void) {
    return DENSERL_COMMIT;
}

const char *denserl_backends(void) {
#if defined(DENSERL_BUILD_EMU)
    return "cpu+cuda-emu";
#elif defined(DENSERL_CUDA)
    return "cpu+cuda";
#else
    return "cpu";
#endif
}

json_t *denserl_build_json(void) {
    return json_pack("{s:s, s:s, s:s}", "version", denserl_version(), "commit", denserl_commit(),
                     "backends", denserl_backends());
}
