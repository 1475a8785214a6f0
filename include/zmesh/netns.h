/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Named network namespaces, as `ip netns` keeps them: a bind mount of the
 * namespace at /run/netns/<name>, so `ip netns exec` and others see ours.
 *
 * Entering is per thread (setns); callers that enter must restore.
 */
#ifndef ZMESH_NETNS_H
#define ZMESH_NETNS_H

#include <stdbool.h>

#define ZM_NETNS_RUN_DIR "/run/netns"

/* Create /run/netns/@name holding a fresh network namespace with lo up.
 * -EEXIST when the name is taken. The calling thread stays where it was. */
int zm_netns_add(const char *name);
/* Unmount and remove /run/netns/@name; 0 when it did not exist. */
int zm_netns_del(const char *name);
bool zm_netns_exists(const char *name);
/* O_RDONLY|O_CLOEXEC fd of the named namespace, or -errno. */
int zm_netns_open(const char *name);

/*
 * Move the calling thread into namespace @name (or fd @fd). *@saved gets an
 * fd of the namespace it was in; zm_netns_restore() goes back and closes it.
 */
int zm_netns_enter(const char *name, int *saved);
int zm_netns_enter_fd(int fd, int *saved);
int zm_netns_restore(int saved);

/* 0 when @fd is a network namespace (NS_GET_NSTYPE), -EINVAL when it is
 * another file, -errno when it cannot be asked. */
int zm_netns_fd_check(int fd);
/* 0 when @a and @b are the same namespace (same nsfs inode), -ENOENT when not. */
int zm_netns_same(int a, int b);

/* Write @value to /proc/sys/@key (dots or slashes) in the current netns. */
int zm_sysctl_set(const char *key, const char *value);

#endif
