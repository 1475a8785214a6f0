// SPDX-License-Identifier: Apache-2.0
/* The runner behind tests/harness/test.h: fork per test, TAP output. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* Exit codes of a test child. */
enum { CHILD_PASS = 0, CHILD_FAIL = 1, CHILD_SKIP = 77 };

#define MAX_DEFER 64

static struct zm_test *tests_head, **tests_tail = &tests_head;
static sigjmp_buf body_jmp;
static bool in_body, failed;
static struct { void (*fn)(void *); void *arg; } defers[MAX_DEFER];
static int ndefers;
/* Shared with the parent so it can print the skip reason on the TAP line. */
static char *skip_reason;

void zm_test_register(struct zm_test *t)
{
	*tests_tail = t;
	tests_tail = &t->next;
}

void test_log(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

bool zm_test_check(bool ok, bool fatal, const char *file, int line,
		   const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return true;
	failed = true;
	printf("# %s:%d: %s: ", file, line, fatal ? "ASSERT" : "EXPECT");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	if (fatal && in_body)
		siglongjmp(body_jmp, 1);
	return false;
}

static void run_defers(void)
{
	while (ndefers > 0) {
		ndefers--;
		defers[ndefers].fn(defers[ndefers].arg);
	}
}

void zm_test_skip(const char *fmt, ...)
{
	va_list ap;
	char why[512];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (skip_reason)
		snprintf(skip_reason, 512, "%s", why);
	run_defers();
	_exit(CHILD_SKIP);
}

void test_defer(void (*fn)(void *arg), void *arg)
{
	if (ndefers == MAX_DEFER) {
		zm_test_check(false, true, __FILE__, __LINE__, "too many deferred cleanups");
		return;
	}
	defers[ndefers].fn = fn;
	defers[ndefers].arg = arg;
	ndefers++;
}

int test_sh(char *out, size_t outsz, const char *fmt, ...)
{
	char *cmd = NULL, *full = NULL;
	size_t got = 0;
	va_list ap;
	FILE *p;
	int st, n;

	va_start(ap, fmt);
	n = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (n < 0 || asprintf(&full, "( %s ) 2>&1", cmd) < 0) {
		free(cmd);
		return -1;
	}
	fflush(stdout);
	p = popen(full, "r");
	free(full);
	free(cmd);
	if (!p)
		return -1;
	for (;;) {
		char buf[4096];
		size_t r = fread(buf, 1, sizeof(buf), p);

		if (r == 0)
			break;
		if (out && got + 1 < outsz) {
			size_t take = r < outsz - 1 - got ? r : outsz - 1 - got;

			memcpy(out + got, buf, take);
			got += take;
		}
	}
	if (out && outsz)
		out[got] = 0;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *test_build_dir(void)
{
	static char dir[4096];
	ssize_t n;

	if (dir[0])
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n < 0)
		return ".";
	dir[n] = 0;
	/* build/tests/<suite>/<name> -> build */
	for (int i = 0; i < 3; i++) {
		char *slash = strrchr(dir, '/');

		if (slash)
			*slash = 0;
	}
	return dir;
}

int test_src_path(const char *rel, char *out, size_t outsz)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s", test_build_dir());
	for (int up = 0; up < 4; up++) {
		char *slash;

		snprintf(out, outsz, "%s/%s", dir, rel);
		if (access(out, F_OK) == 0)
			return 0;
		slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = 0;
	}
	return -ENOENT;
}

char *test_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = 0;
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int test_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f))
		rc = -1;
	return rc;
}

long test_proc_kib(int pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			kib = atol(line + n + 1);
	fclose(f);
	return kib;
}

int test_replay_corpus(const char *target, int (*fn)(const uint8_t *data, size_t size))
{
	char rel[256], dir[4200], path[4500];
	struct dirent *de;
	int n = 0, err;
	DIR *d;

	snprintf(rel, sizeof(rel), "tests/fuzz/%s/corpus", target);
	err = test_src_path(rel, dir, sizeof(dir));
	if (err)
		return err;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t len;
		char *buf;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		buf = test_slurp(path, &len);
		if (!buf) {
			n = -EIO;
			break;
		}
		fn((const uint8_t *)buf, len);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

bool test_is_root(void)
{
	return geteuid() == 0;
}

static unsigned test_timeout = 120;

/* The child's own deadline: end the body like a failed ASSERT, so the
 * teardown and deferred cleanups still run (the parent kills later). */
static void on_child_alarm(int sig)
{
	static const char msg[] = "# timed out: running the cleanup\n";

	(void)sig;
	failed = true;
	(void)!write(1, msg, sizeof(msg) - 1);
	if (in_body)
		siglongjmp(body_jmp, 1);
	_exit(CHILD_FAIL);
}

static int run_child(struct zm_test *t)
{
	void *volatile self = NULL;
	struct sigaction sa = { .sa_handler = on_child_alarm };

	setpgid(0, 0);
	sigaction(SIGALRM, &sa, NULL);
	alarm(test_timeout);
	if (t->self_size) {
		self = calloc(1, t->self_size);
		if (!self)
			_exit(CHILD_FAIL);
		t->self = self;
		in_body = true;
		if (!sigsetjmp(body_jmp, 1))
			t->setup(self);
		in_body = false;
	}
	if (!failed) {
		in_body = true;
		if (!sigsetjmp(body_jmp, 1))
			t->fn(t);
		in_body = false;
	}
	alarm(test_timeout);	/* a fresh deadline for the cleanup itself */
	if (t->teardown)
		t->teardown(self);
	run_defers();
	free(self);
	fflush(stdout);
	_exit(failed ? CHILD_FAIL : CHILD_PASS);
}

static volatile sig_atomic_t timed_out;
static void on_alarm(int sig) { (void)sig; timed_out = 1; }

int main(int argc, char **argv)
{
	const char *filter = NULL;
	int pass = 0, fail = 0, skip = 0, n = 0, total = 0, opt;
	bool list = false;
	unsigned timeout = 120;
	struct zm_test *t;
	const char *env = getenv("ZM_TEST_TIMEOUT");

	while ((opt = getopt(argc, argv, "t:l")) != -1) {
		switch (opt) {
		case 't': filter = optarg; break;
		case 'l': list = true; break;
		default:
			fprintf(stderr, "usage: %s [-t NAME] [-l]\n", argv[0]);
			return 2;
		}
	}
	if (env && atoi(env) > 0)
		timeout = (unsigned)atoi(env);
	test_timeout = timeout;

	for (t = tests_head; t; t = t->next)
		if (!filter || strstr(t->name, filter))
			total++;
	if (list) {
		for (t = tests_head; t; t = t->next)
			if (!filter || strstr(t->name, filter))
				puts(t->name);
		return 0;
	}

	skip_reason = mmap(NULL, 512, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (skip_reason == MAP_FAILED)
		skip_reason = NULL;

	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..%d\n", total);
	for (t = tests_head; t; t = t->next) {
		int status = 0;
		pid_t pid, w;
		char *slash = strrchr(argv[0], '/');

		if (filter && !strstr(t->name, filter))
			continue;
		n++;
		printf("# RUN %s.%s\n", slash ? slash + 1 : argv[0], t->name);
		fflush(stdout);
		if (skip_reason)
			skip_reason[0] = 0;
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			run_child(t);
		setpgid(pid, pid);
		timed_out = 0;
		/* The child stops itself at `timeout`; this is the backstop. */
		alarm(2 * timeout + 10);
		do {
			w = waitpid(pid, &status, 0);
		} while (w < 0 && errno == EINTR && !timed_out);
		alarm(0);
		if (timed_out) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			printf("# timed out after %u s\n", timeout);
			status = CHILD_FAIL << 8;
		}
		/* Reap whatever the test left in its process group. */
		kill(-pid, SIGKILL);

		if (WIFSIGNALED(status)) {
			printf("# killed by signal %d (%s)\n", WTERMSIG(status),
			       strsignal(WTERMSIG(status)));
			printf("not ok %d %s\n", n, t->name);
			fail++;
		} else if (WEXITSTATUS(status) == CHILD_PASS) {
			printf("ok %d %s\n", n, t->name);
			pass++;
		} else if (WEXITSTATUS(status) == CHILD_SKIP) {
			printf("ok %d %s # SKIP %s\n", n, t->name,
			       skip_reason ? skip_reason : "");
			skip++;
		} else {
			printf("not ok %d %s\n", n, t->name);
			fail++;
		}
		fflush(stdout);
	}
	printf("# %d passed, %d failed, %d skipped\n", pass, fail, skip);
	return fail ? 1 : 0;
}
