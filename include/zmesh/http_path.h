/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request path normalization for the waypoint, as Envoy and Istio do it for
 * authorization (istio.io "Authorization Policy Normalization", Envoy's
 * normalize_path / merge_slashes / path_with_escaped_slashes_action).
 *
 * The output is both what AuthorizationPolicy `paths` rules match against
 * and what the backend receives: matching one string and forwarding another
 * is the CVE-2021-31920 class of bypass (`/api/../admin`, `//admin`,
 * `%2e%2e`, `%2F`), so the waypoint must forward exactly this output.
 *
 * Steps, in Envoy's order:
 *  1. The target is split at the first '?' (query) and the first '#'
 *     (fragment). The fragment is dropped from the output entirely
 *     (CVE-2021-39156); the query is forwarded unchanged (but for bytes
 *     >= 0x80, percent-encoded as in step 2, and control bytes, rejected)
 *     and is not part of the path that rules match (res->path_len).
 *  2. Every byte of the path is checked: NUL, other control bytes (< 0x20,
 *     0x7f) and space -> -EINVAL (400). Bytes >= 0x80 are percent-encoded
 *     (%HH, upper case), so the output is always printable ASCII.
 *  3. Percent-escapes are decoded once, never twice (%252e stays %252e):
 *     - %HH that is not two hex digits -> -EINVAL (400);
 *     - %00 -> -EINVAL (400), whatever the options;
 *     - unreserved characters (ALPHA DIGIT - . _ ~, any hex case) are
 *       decoded: %41 -> A, %7e -> ~, %2e -> '.';
 *     - %2F and %5C follow @escaped_slash: KEEP leaves them encoded,
 *       REJECT fails with -EPERM (400), DECODE turns them into '/' and '\'
 *       (then treated like literal ones, steps 4-6);
 *     - every other escape stays encoded with its hex digits upper-cased
 *       (%3f -> %3F), RFC 3986 section 6.2.2.1.
 *  4. With @backslash_to_slash, '\' becomes '/'.
 *  5. Dot segments are resolved (RFC 3986 5.2.4): "." segments vanish, ".."
 *     removes the previous segment and never climbs above the root; a
 *     trailing "/." or "/.." leaves a trailing '/'. Empty segments count as
 *     segments here, as in Envoy (`/a//../b` -> `/a/b`).
 *  6. With @merge_slashes, runs of '/' collapse to one (after step 5, as
 *     Envoy applies merge_slashes after normalize_path).
 *
 * The target must be origin-form (start with '/') or exactly "*"
 * (OPTIONS * HTTP/1.1), which is returned unchanged; anything else -> -EINVAL.
 * With @normalize false (Istio NONE) steps 3-6 are skipped but step 1, 2 and
 * the %00 / bad-%HH rejection still apply.
 *
 * The function is pure: no allocation, no global state, explicit lengths
 * (the input may contain NUL bytes: they are rejected, never a terminator).
 */
#ifndef ZMESH_HTTP_PATH_H
#define ZMESH_HTTP_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* What to do with %2F / %5C (Envoy's path_with_escaped_slashes_action). */
enum zm_path_escaped_slash {
	ZM_PATH_SLASH_KEEP = 0,	/* leave encoded (upper-cased): KEEP_UNCHANGED */
	ZM_PATH_SLASH_REJECT,	/* -EPERM, answer 400: REJECT_REQUEST */
	ZM_PATH_SLASH_DECODE,	/* decode, then normalize: UNESCAPE_AND_FORWARD */
};

struct zm_path_opts {
	bool normalize;			/* steps 3-5 (Istio BASE and above) */
	bool backslash_to_slash;	/* step 4 (part of BASE) */
	bool merge_slashes;		/* step 6 */
	enum zm_path_escaped_slash escaped_slash;
};

/* Istio's meshConfig.pathNormalization.normalization values. */
enum zm_istio_path_normalization {
	ZM_ISTIO_PATH_NONE,
	ZM_ISTIO_PATH_BASE,			/* Istio's default */
	ZM_ISTIO_PATH_MERGE_SLASHES,
	ZM_ISTIO_PATH_DECODE_AND_MERGE_SLASHES,
};

/* Options equivalent to an Istio pathNormalization setting. */
struct zm_path_opts zm_path_opts_istio(enum zm_istio_path_normalization mode);
/* "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES" -> mode; -EINVAL otherwise. */
int zm_istio_path_normalization_parse(const char *name);

struct zm_path_result {
	size_t path_len;	/* normalized path: out[0..path_len), what rules match */
	size_t len;		/* path + "?query" (no fragment): what to forward */
};

/*
 * Normalize @in (@in_len bytes, the HTTP request-target or :path) into @out
 * (@out_sz bytes; NUL-terminated at out[res->len]). Needs at most
 * 3 * in_len + 1 bytes of output.
 * Returns 0, or -EINVAL (malformed: bad %HH, %00, NUL or control byte, not
 * origin-form), -EPERM (escaped slash with ZM_PATH_SLASH_REJECT), -ENOSPC
 * (@out too small). Every error means "answer 400 and do not forward";
 * zm_path_strerror() gives a short reason for the log and the body.
 */
int zm_http_path_normalize(const char *in, size_t in_len, char *out, size_t out_sz,
			   const struct zm_path_opts *opts, struct zm_path_result *res);

/* Short human-readable reason for a zm_http_path_normalize() error. */
const char *zm_path_strerror(int err);

#endif /* ZMESH_HTTP_PATH_H */
