/* Atomic file output (temp name beside the target, fsync, rename, fsync of the directory)
 * and the small filesystem helpers that go with it: copy, mkdir -p, rm -rf and existence
 * tests. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include "check.h"
#include "error.h"
#include "fileio.h"

int atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return dr_error("(empty path): expected a file name to write");
    /* found now, not by the rename after all the work */
    if (dir_exists(path))
        return dr_error("%s: is a directory, expected a file name to write", path);
    int n1 = snprintf(af->path, sizeof af->path, "%s", path);
    int n2 = snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof af->tmp) {
        af->path[0] = af->tmp[0] = '\0';
        return dr_error("%.200s...: path is too long (at most %zu bytes)", path,
                        sizeof af->tmp - 32);
    }
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp) {
        int e = errno;
        af->tmp[0] = '\0';
        return dr_error("%s: cannot create the temporary file for writing: %s", path, strerror(e));
    }
    return DR_OK;
}

/* The rename is only durable once the directory entry itself is on disk; failing to sync
 * a directory (some filesystems refuse) is not worth failing a finished write for. */
static void fsync_parent_dir(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int atomic_commit(AtomicFile *af) {
    if (!af->fp) return dr_error("%s: file is not open for writing", af->path);
    const char *what = NULL;
    int e = 0;
    if (fflush(af->fp) != 0 || ferror(af->fp)) {
        what = "write failed";
        e = errno;
    } else if (fsync(fileno(af->fp)) != 0) {
        what = "fsync failed";
        e = errno;
    }
    if (fclose(af->fp) != 0 && !what) {
        what = "close failed";
        e = errno;
    }
    af->fp = NULL;
    if (!what && rename(af->tmp, af->path) != 0) {
        what = "cannot rename the temporary file onto it";
        e = errno;
    }
    if (what) {
        unlink(af->tmp);
        af->tmp[0] = '\0';
        return dr_error("%s: %s: %s", af->path, what, e ? strerror(e) : "I/O error");
    }
    af->tmp[0] = '\0';
    fsync_parent_dir(af->path);
    return DR_OK;
}

int atomic_check(const char *path) {
    AtomicFile af;
    if (atomic_open(&af, path)) return DR_ERR;
    atomic_abort(&af);
    return DR_OK;
}

void atomic_abort(AtomicFile *af) {
    if (af->fp) {
        fclose(af->fp);
        af->fp = NULL;
    }
    if (af->tmp[0]) {
        unlink(af->tmp);
        af->tmp[0] = '\0';
    }
}

int atomic_write(const char *path, const void *data, size_t n) {
    AtomicFile af;
    if (atomic_open(&af, path) != DR_OK) return DR_ERR;
    if (n > 0 && fwrite(data, 1, n, af.fp) != n) {
        int e = errno;
        atomic_abort(&af);
        return dr_error("%s: write failed: %s", path, e ? strerror(e) : "I/O error");
    }
    return atomic_commit(&af);
}

int file_copy(const char *src, const char *dst) {
    FILE *in = file_open_read(src, "a file to copy");
    if (!in) return DR_ERR;
    AtomicFile af;
    if (atomic_open(&af, dst) != DR_OK) {
        fclose(in);
        return DR_ERR;
    }
    char buf[16384];
    size_t n;
    int st = DR_OK;
    while (st == DR_OK && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, af.fp) != n)
            st = dr_error("%s: write failed: %s", dst, errno ? strerror(errno) : "I/O error");
    if (st == DR_OK && ferror(in)) st = dr_error("%s: read failed", src);
    fclose(in);
    if (st != DR_OK) {
        atomic_abort(&af);
        return st;
    }
    return atomic_commit(&af);
}

/* The entries of directory PATH, each removed whole. */
static int remove_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return dr_error("%s: cannot open: %s", path, strerror(errno));
    struct dirent *e;
    int st = DR_OK;
    while (st == DR_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
            st = dr_error("%.200s...: path is too long", sub);
        else
            st = remove_tree(sub);
    }
    closedir(d);
    return st;
}

int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? DR_OK : dr_error("%s: cannot stat: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode) && remove_entries(path) != DR_OK) return DR_ERR;
    if ((S_ISDIR(st.st_mode) ? rmdir(path) : unlink(path)) != 0)
        return dr_error("%s: cannot remove: %s", path, strerror(errno));
    return DR_OK;
}

int make_dirs(const char *path) {
    if (!path || !*path) return dr_error("(empty path): expected a directory name");
    char buf[4096];
    size_t len = strlen(path);
    if (len >= sizeof buf) return dr_error("%.200s...: path is too long", path);
    memcpy(buf, path, len + 1);
    /* Each prefix ending just before a '/' is one component to create; the loop runs once
     * more at the terminating NUL for the last component. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (buf[i - 1] == '/') continue; /* "a//b" or a trailing slash */
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0) {
            int e = errno;
            struct stat st;
            if (e == EEXIST) {
                if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                    return dr_error("%s: cannot create directory: '%s' exists and is not a "
                                    "directory",
                                    path, buf);
            } else if (!(stat(buf, &st) == 0 && S_ISDIR(st.st_mode))) {
                /* EACCES on an existing parent such as "/" is fine; anything else is not */
                return dr_error("%s: cannot create directory '%s': %s", path, buf, strerror(e));
            }
        }
        buf[i] = saved;
    }
    return DR_OK;
}

FILE *file_open_read(const char *path, const char *expected) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        dr_error("%s: is a directory, expected %s", path, expected);
        return NULL;
    }
    FILE *f = fopen(path, "r");
    if (!f) dr_error("%s: cannot open: %s", path, strerror(errno));
    return f;
}

int file_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int dir_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
