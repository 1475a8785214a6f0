/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging and error reporting shared by every zmesh binary.
 *
 * Log lines go to stderr as "<time> <level> <component>: message". The level
 * can change at run time (ztunnel's admin /logging?level=). Messages that
 * carry attacker-controlled text must pass it through zm_log_escape() first.
 *
 * struct zm_error carries one human-readable error message from the place it
 * was detected to the place that reports it; config errors use the form
 * "file:line:col: field.path: why".
 */
#ifndef ZMESH_LOG_H
#define ZMESH_LOG_H

#include <stddef.h>

enum zm_log_level {
	ZM_LOG_ERROR,
	ZM_LOG_WARN,
	ZM_LOG_INFO,
	ZM_LOG_DEBUG,
};

/* Name printed in every line, e.g. "ztunnel". Not copied: pass a literal. */
void zm_log_init(const char *component);
void zm_log_set_level(enum zm_log_level level);
enum zm_log_level zm_log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -EINVAL for anything else. */
int zm_log_level_parse(const char *name);
const char *zm_log_level_name(enum zm_log_level level);

void zm_log(enum zm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define zm_log_error(...) zm_log(ZM_LOG_ERROR, __VA_ARGS__)
#define zm_log_warn(...) zm_log(ZM_LOG_WARN, __VA_ARGS__)
#define zm_log_info(...) zm_log(ZM_LOG_INFO, __VA_ARGS__)
#define zm_log_debug(...) zm_log(ZM_LOG_DEBUG, __VA_ARGS__)

/*
 * Copy @in (@len bytes, may hold NULs) to @out as printable ASCII: control
 * bytes, quotes, backslashes and non-ASCII become \xHH. Always NUL-terminates
 * @out (when @outsz > 0) and truncates with "..." when it does not fit.
 * Returns @out.
 */
char *zm_log_escape(char *out, size_t outsz, const char *in, size_t len);

#define ZM_ERROR_MAX 1024

struct zm_error {
	char msg[ZM_ERROR_MAX];
};

/* Sets e->msg (when e is not NULL) and returns -err, for `return zm_error_set(e, EINVAL, ...)`. */
int zm_error_set(struct zm_error *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* ZMESH_LOG_H */
