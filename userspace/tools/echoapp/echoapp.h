/* SPDX-License-Identifier: Apache-2.0 */
/*
 * echoapp: the test workload. `serve` answers HTTP/1.1, HTTP/2 (h2c prior
 * knowledge and Upgrade) and TCP echo and says who answered; `client` sends
 * requests and prints who answered. See docs/echoapp.md.
 */
#ifndef ECHOAPP_H
#define ECHOAPP_H

#include <stdbool.h>
#include <stddef.h>

#define ECHO_MAX_PORTS 8
#define ECHO_MAX_HEADER_BYTES (16 * 1024)	/* beyond: 431 */
#define ECHO_MAX_HEADERS 128			/* header lines per request; beyond: 431 */
#define ECHO_MAX_BODY (8u << 20)		/* beyond: 413 */

struct echo_identity {
	const char *pod, *ns, *version;
};

struct echo_serve_opts {
	struct echo_identity id;
	int http_ports[ECHO_MAX_PORTS], nhttp;
	int tcp_ports[ECHO_MAX_PORTS], ntcp;
	double fail_rate;
	int threads;
	bool verbose;
	const char *port_file;	/* write "http=P tcp=P" of the first ports */
};

int echo_serve(const struct echo_serve_opts *o);
int echo_client(int argc, char **argv);

#endif
