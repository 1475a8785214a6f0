/* SPDX-License-Identifier: Apache-2.0 */
/* Small filesystem helpers. Both return 0 or a negative errno. */
#ifndef ZMESH_FSUTIL_H
#define ZMESH_FSUTIL_H

#include <sys/types.h>

/* mkdir -p: every missing directory of @path, with @mode. */
int zm_mkdir_p(const char *path, mode_t mode);
/* rm -rf: @path and everything below it (not following links); 0 if absent. */
int zm_rm_rf(const char *path);

#endif
