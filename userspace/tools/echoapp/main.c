// SPDX-License-Identifier: Apache-2.0
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echoapp.h"
#include "zmesh/log.h"

static const char usage[] =
	"usage: echoapp serve [--http PORT]... [--tcp PORT]... [--pod NAME] [--namespace NS]\n"
	"                     [--version V] [--fail-rate F] [--threads N] [--port-file F] [-v]\n"
	"       echoapp client URL [-n N] [-c CONC] [--http2] [-H 'K: V']... [-X METHOD]\n"
	"                     [-o json] [--timeout MS]\n"
	"URL: http://host:port/path or tcp://host:port\n";

static int port_arg(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*end || v < 0 || v > 65535)
		return -1;
	*out = (int)v;
	return 0;
}

static int serve(int argc, char **argv)
{
	struct echo_serve_opts o = { .threads = 1 };
	const char *e;

	o.id.pod = (e = getenv("POD_NAME")) && *e ? e : "unknown";
	o.id.ns = (e = getenv("POD_NAMESPACE")) && *e ? e : "default";
	o.id.version = (e = getenv("POD_VERSION")) ? e : "";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool val = true;

		if (!strcmp(a, "-v")) {
			o.verbose = true;
			val = false;
		} else if (!v) {
			goto bad;
		} else if (!strcmp(a, "--http")) {
			if (o.nhttp == ECHO_MAX_PORTS || port_arg(v, &o.http_ports[o.nhttp++]))
				goto bad;
		} else if (!strcmp(a, "--tcp")) {
			if (o.ntcp == ECHO_MAX_PORTS || port_arg(v, &o.tcp_ports[o.ntcp++]))
				goto bad;
		} else if (!strcmp(a, "--pod")) {
			o.id.pod = v;
		} else if (!strcmp(a, "--namespace")) {
			o.id.ns = v;
		} else if (!strcmp(a, "--version")) {
			o.id.version = v;
		} else if (!strcmp(a, "--port-file")) {
			o.port_file = v;
		} else if (!strcmp(a, "--fail-rate")) {
			char *end;

			o.fail_rate = strtod(v, &end);
			if (*end || o.fail_rate < 0 || o.fail_rate > 1)
				goto bad;
		} else if (!strcmp(a, "--threads")) {
			o.threads = atoi(v);
			if (o.threads < 1 || o.threads > 64)
				goto bad;
		} else {
			goto bad;
		}
		if (val)
			i++;
	}
	if (!o.nhttp && !o.ntcp) {
		fprintf(stderr, "echoapp serve: give at least one --http or --tcp port\n");
		return 2;
	}
	return echo_serve(&o) ? 1 : 0;
bad:
	fputs(usage, stderr);
	return 2;
}

int main(int argc, char **argv)
{
	zm_log_init("echoapp");
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return serve(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "client"))
		return echo_client(argc - 1, argv + 1);
	fputs(usage, argc >= 2 && !strcmp(argv[1], "-h") ? stdout : stderr);
	return 2;
}
