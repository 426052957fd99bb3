/* What build a binary is: its version, the commit it was built from (scripts/build_info.cmake:
 * a 12-digit hash, "-dirty" when the tree had changes, "unknown" outside git) and its
 * backends. Run reports and benchmark outputs carry them, so a result names its build. */
#pragma once
#include <jansson.h>

const char *denserl_version(void);
const char *denserl_commit(void);
/* "cpu", "cpu+cuda" or "cpu+cuda-emu". */
const char *denserl_backends(void);
/* {"version", "commit", "backends"}, a new reference for a report's "denserl" key. */
json_t *denserl_build_json(void);
