/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zmeshctl subcommands. Each lives in its own file and registers itself:
 *
 *   static int cmd_lab(int argc, char **argv) { ... }
 *   ZM_CMD(lab, cmd_lab, "lab up|down|status|exec  the simulated cluster");
 *
 * argv[0] is the subcommand name. Return the process exit status (0 ok,
 * 1 failure, 2 usage error); print errors to stderr yourself.
 */
#ifndef ZMESHCTL_CMD_H
#define ZMESHCTL_CMD_H

struct zmctl_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
	struct zmctl_cmd *next;
};

void zmctl_cmd_register(struct zmctl_cmd *cmd);

#define ZM_CMD(cname, fn, helptext)                                        \
	static struct zmctl_cmd zmctl_cmd_##cname = {                      \
		.name = #cname, .run = fn, .help = helptext };              \
	__attribute__((constructor)) static void zmctl_reg_##cname(void)   \
	{ zmctl_cmd_register(&zmctl_cmd_##cname); }

#endif
