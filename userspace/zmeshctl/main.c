// SPDX-License-Identifier: Apache-2.0
/* zmeshctl: the command line of zmesh (istioctl's role). */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "zmesh/log.h"

static struct zmctl_cmd *cmds;

void zmctl_cmd_register(struct zmctl_cmd *cmd)
{
	struct zmctl_cmd **p = &cmds;

	/* Keep the list sorted so `zmeshctl help` reads well. */
	while (*p && strcmp((*p)->name, cmd->name) < 0)
		p = &(*p)->next;
	cmd->next = *p;
	*p = cmd;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zmeshctl COMMAND [ARGS...]\n\ncommands:\n");
	for (struct zmctl_cmd *c = cmds; c; c = c->next)
		fprintf(f, "  %s\n", c->help);
	fprintf(f, "  help                      this text\n");
}

int main(int argc, char **argv)
{
	zm_log_init("zmeshctl");
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	for (struct zmctl_cmd *c = cmds; c; c = c->next)
		if (!strcmp(c->name, argv[1]))
			return c->run(argc - 1, argv + 1);
	fprintf(stderr, "zmeshctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
