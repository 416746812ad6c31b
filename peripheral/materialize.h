/* Materializing a deployed disk: resolving a deploy target safely (under
 * the directories the policy allows, no symlink followed, held as a parent
 * directory fd plus a name), creating a qcow2 overlay over a prepared base
 * in O(1), or an independent reflink/sparse copy of it, and reading back an
 * existing overlay's backing file.  Every write goes to a temporary file in
 * the target's directory that is fsync'd and renamed into place; an
 * existing target is never overwritten unless the caller says replace
 * (ephemeral domains).  Used by the peripheral's DEPLOY.
 *
 * Temporary files are named ".NAME.ppf-tmp-XXXXXXXX" (NAME cut to 200
 * bytes), so a restart can recognise what a crash left behind.
 */
#ifndef PPF_MATERIALIZE_H
#define PPF_MATERIALIZE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The infix of temporary files: ".NAME" PPF_MATERIALIZE_TMP_INFIX "XXXXXXXX". */
#define PPF_MATERIALIZE_TMP_INFIX ".ppf-tmp-"

/* Values of the replace argument below. */
#define PPF_REPLACE_NEVER        0  /* an existing target is EEXIST */
#define PPF_REPLACE_ALWAYS       1  /* an ephemeral domain's disk */
#define PPF_REPLACE_PLACEHOLDER  2  /* only an existing empty regular file (a ppf pool
                                     * volume made by ppfctl vol-create); it is swapped
                                     * out atomically and removed, and if it stopped
                                     * being empty meanwhile it is put back (EEXIST) */

/* Largest backing file name a qcow2 may carry (qemu's limit). */
#define PPF_QCOW2_BACKING_MAX 1023

/* A deploy target, resolved safely: absolute, normalized (no "", ".", ".."
 * components, no trailing /), strictly under one of the allowed
 * directories (themselves absolute; compared after realpath() of the
 * ALLOWED dir only), every component from the allowed dir down to the
 * target's parent an existing real directory (no symlink followed), the
 * final name not a symlink (nor containing PPF_MATERIALIZE_TMP_INFIX,
 * which is reserved for temporary files).  dirfd is an O_PATH|O_DIRECTORY fd of the
 * parent, opened component by component with O_NOFOLLOW, so later steps
 * use *at() calls and cannot be redirected by a concurrent symlink swap.
 * path is the target as given; name its last component.
 */
struct ppf_target {
    int dirfd;
    char name[256];
    char path[4096];
};

/* Resolves path against the n_allowed directories in allowed.  On success
 * fills *t (the caller closes it with ppf_target_close) and returns 0; on
 * failure returns -1 with errno set, t->dirfd == -1 and a message naming
 * the path and what to do in err (errlen bytes; err may be NULL).
 */
int ppf_target_resolve(const char *path, const char *const *allowed, size_t n_allowed,
                       struct ppf_target *t, char *err, size_t errlen);
/* Closes t's directory fd (t may be NULL or already closed). */
void ppf_target_close(struct ppf_target *t);
/* 1 if the target exists (any type, symlinks not followed), 0 if not,
 * -1 on error (errno set). */
int ppf_target_exists(const struct ppf_target *t);

/* 1 if the target exists and the replace mode (PPF_REPLACE_*) does not let
 * it be replaced, 0 if a materialization may go ahead, -1 on error. */
int ppf_target_blocks(const struct ppf_target *t, int replace);

/* Creates a qcow2 (v3) overlay at the target whose backing file is
 * base_path (absolute, at most 1023 bytes, format raw), virtual size =
 * size rounded up to 512 bytes (as qemu sees a raw base), cluster size
 * 64 KiB.  The image is written by hand in O(1) whatever the size: header,
 * backing-format extension, backing file name, refcount table, one
 * refcount block and an empty (sparse) L1 table.  replace: overwrite an
 * existing target (ephemeral domains only); otherwise an existing target
 * is EEXIST.  mode: the file's permission bits (0 means 0600), not
 * masked by the umask.  0 on success; -1 with errno and err set, the
 * target untouched and no temporary file left.
 */
int ppf_overlay_create(const struct ppf_target *t, const char *base_path, uint64_t size,
                       int replace, mode_t mode, char *err, size_t errlen);

/* Creates an independent copy of src_path (a regular file) at the target:
 * a FICLONE reflink where the filesystem can, else a sparse copy (holes
 * found with SEEK_DATA/SEEK_HOLE and kept, data moved with
 * copy_file_range, or read/write that also skips zero blocks).  replace,
 * mode, the return value and the clean-up on failure (ENOSPC included)
 * as for ppf_overlay_create.
 */
int ppf_copy_create(const struct ppf_target *t, const char *src_path, int replace, mode_t mode,
                    char *err, size_t errlen);

/* Reads a qcow2 file's backing file name into name (len bytes, NUL
 * terminated).  1 if path is a qcow2 (v2 or v3) with a backing file, 0 if
 * it is not a regular file, not a qcow2, has no backing file or a header
 * that qemu would refuse (offsets out of the file, name longer than 1023
 * bytes or holding a NUL), -1 on I/O error or if len is too small
 * (ERANGE).  Safe on hostile files: every offset and length is checked.
 */
int ppf_qcow2_backing_file(const char *path, char *name, size_t len);

#endif /* PPF_MATERIALIZE_H */
