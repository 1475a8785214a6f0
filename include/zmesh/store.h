/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config store (zmeshd's embedded default; DESIGN.md "Config"): a state
 * directory holding the applied objects, versioned, changed only by atomic
 * applies and deletes.
 *
 * Layout (the contract between writers, zmeshd and proxies that read the
 * directory directly until the :15012 push reaches them):
 *
 *   <dir>/lock              flock(2)ed by a writer for the whole change
 *   <dir>/current           symlink -> "gen-<N>" (relative), swapped by rename(2)
 *   <dir>/gen-<N>/          one generation: one file per object,
 *                           "<Kind>.<namespace>.<name>.yaml" ("_" for the
 *                           namespace of cluster-scoped kinds), each holding
 *                           one document (the object's JSON from
 *                           zm_cfg_obj_to_json(), which is YAML)
 *
 * N is the store version: it starts at 1 (an empty generation made by
 * zm_store_open when the directory is new) and grows by one per change that
 * changed something. A reader resolves `current` once and loads that
 * generation with zm_cfg_load_path(), so it sees one whole version, never a
 * mix; writers keep the previous generation for readers that are still on it
 * and remove older ones. Watchers use inotify on <dir> (IN_MOVED_TO of
 * "current").
 *
 * An apply loads the new documents, validates them against the current state
 * (zm_cfg_validate with the current set as base), and only when there is no
 * error writes the next generation: a rejected apply changes nothing.
 */
#ifndef ZMESH_STORE_H
#define ZMESH_STORE_H

#include <stdint.h>

#include "zmesh/config.h"
#include "zmesh/log.h"

#define ZM_STORE_DEFAULT_DIR "/var/lib/zmesh/store"
/* A lab's store: /run/zmesh/lab/<lab>/store (made by `lab up`, removed by `lab down`). */

struct zm_store;

/* Open (creating it, mode 0700, with an empty generation 1 when new) the store at @dir. */
int zm_store_open(const char *dir, struct zm_store **out, struct zm_error *e);
void zm_store_close(struct zm_store *st);

/*
 * Read the current generation into @out (initialised by the caller) and its
 * version into *@version. Works on a directory without opening the store (a
 * proxy reading it read-only): pass the directory.
 */
int zm_store_read(const char *dir, struct zm_cfg_set *out, uint64_t *version, struct zm_error *e);

/* The current version of the store at @dir (0 when it has none). */
uint64_t zm_store_version(const char *dir);

/*
 * Apply @in (objects loaded by the caller, e.g. with zm_cfg_load_path): create
 * or replace each. Validation errors are appended to @in->errs and the call
 * returns -EINVAL with nothing changed. *@version gets the new version (the
 * old one when nothing changed: an apply of identical objects is a no-op).
 */
int zm_store_apply(struct zm_store *st, struct zm_cfg_set *in, uint64_t *version, struct zm_error *e);

/* Delete the objects named by @in (kind/namespace/name); unknown ones are errors. */
int zm_store_delete(struct zm_store *st, struct zm_cfg_set *in, uint64_t *version, struct zm_error *e);

#endif /* ZMESH_STORE_H */
