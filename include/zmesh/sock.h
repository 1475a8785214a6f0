/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small socket helpers shared by the proxies and the test tools.
 * All return 0 (or a file descriptor / port) on success and a negative errno
 * on failure; none of them logs.
 */
#ifndef ZMESH_SOCK_H
#define ZMESH_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

/* Longest string zm_sock_addr_str() writes, NUL included ("[v6%scope]:port"). */
#define ZM_SOCK_ADDRSTRLEN 72

enum {
	ZM_SOCK_REUSEPORT = 1 << 0,	/* SO_REUSEPORT: one listener per worker thread */
	ZM_SOCK_V4ONLY = 1 << 1,	/* do not try [::] first */
	ZM_SOCK_LOOPBACK = 1 << 2,	/* 127.0.0.1 (or ::1) only: admin endpoints */
};

/*
 * A non-blocking, close-on-exec TCP listener on every address at @port
 * (0 picks a free port; zm_sock_local_port() tells which). Tries a
 * dual-stack [::] socket first and falls back to 0.0.0.0 where IPv6 is off.
 * SO_REUSEADDR is always set; @flags adds ZM_SOCK_*.
 */
int zm_sock_listen_tcp(int port, int backlog, unsigned int flags);

/* The local port a socket is bound to. */
int zm_sock_local_port(int fd);

/*
 * Format @sa as "a.b.c.d:port" or "[v6]:port" into @out (at least
 * ZM_SOCK_ADDRSTRLEN bytes for no truncation). IPv4-mapped IPv6 addresses
 * (what a dual-stack socket reports for IPv4 peers) print as IPv4.
 * -EAFNOSUPPORT for other families ("?" is written).
 */
int zm_sock_addr_str(const struct sockaddr *sa, char *out, size_t outsz);
/* The same for a socket's peer (getpeername) and local (getsockname) address. */
int zm_sock_peer_str(int fd, char *out, size_t outsz);
int zm_sock_local_str(int fd, char *out, size_t outsz);

#endif /* ZMESH_SOCK_H */
