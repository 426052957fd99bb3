/* Atomic file output: write to a temporary name beside the target, fsync, rename, so a
 * reader never sees a half-written file and a failed run leaves nothing behind. */
#pragma once
#include <stdio.h>

typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4096];
} AtomicFile;

/* Opens PATH.tmp.<pid> for writing. DR_OK or DR_ERR (message names the path). */
int atomic_open(AtomicFile *af, const char *path);
/* Flushes, fsyncs and renames onto the target. DR_OK or DR_ERR; the temp file is removed on error.
 */
int atomic_commit(AtomicFile *af);
/* Whether PATH can be written atomically (creates and removes its temporary file), for a
 * command that writes only at the end of long work. DR_OK or DR_ERR as atomic_open. */
int atomic_check(const char *path);
/* Closes and removes the temporary file without touching the target. */
void atomic_abort(AtomicFile *af);
/* Writes a whole buffer atomically. */
int atomic_write(const char *path, const void *data, size_t n);
/* Copies the file SRC to DST atomically. DR_OK or DR_ERR naming the path that failed. */
int file_copy(const char *src, const char *dst);
/* rm -rf PATH (no links followed). DR_OK, also when PATH does not exist, or DR_ERR naming the
 * entry that could not be removed. */
int remove_tree(const char *path);
/* mkdir -p. DR_OK or DR_ERR. */
int make_dirs(const char *path);
/* Opens PATH for reading; NULL after recording "<path>: cannot open: <reason>" or, for a
 * directory (which fopen accepts and every read then fails on), "<path>: is a directory". */
FILE *file_open_read(const char *path, const char *expected);
/* 1 if PATH exists and is a regular file / a directory. */
int file_exists(const char *path);
int dir_exists(const char *path);
