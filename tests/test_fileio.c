/* Tests for runtime/fileio.c: a target appears only at commit and with exactly the bytes
 * written, abort and every failure leave neither target nor temporary file behind, errors
 * name the path, and make_dirs behaves like mkdir -p. Everything happens in a fresh
 * directory under /tmp that is removed at the end. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "runtime/error.h"
#include "runtime/fileio.h"
#include "testutil.h"

static char g_dir[256];

/* Reads a whole file; returns its length or -1. */
static long read_all(const char *path, unsigned char *buf, size_t cap) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return (long)n;
}

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Counts entries under DIR (recursively) whose name contains ".tmp.". */
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strstr(e->d_name, ".tmp.")) n++;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) n += count_temps(sub);
    }
    closedir(d);
    return n;
}

static void test_commit_visibility(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/out.bin", g_dir);
    unsigned char data[5000], back[6000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)xorshift_next();

    AtomicFile af;
    REQUIRE(atomic_open(&af, path) == DR_OK, "atomic_open: %s", dr_last_error());
    char want_tmp[600];
    snprintf(want_tmp, sizeof want_tmp, "%s.tmp.%ld", path, (long)getpid());
    EXPECT(strcmp(af.tmp, want_tmp) == 0, "temp name '%s', expected '%s'", af.tmp, want_tmp);
    EXPECT(fwrite(data, 1, sizeof data, af.fp) == sizeof data, "fwrite");
    fflush(af.fp);
    EXPECT(!path_exists(path), "target visible before commit");
    EXPECT(path_exists(af.tmp), "temporary file missing while writing");
    EXPECT(atomic_commit(&af) == DR_OK, "commit: %s", dr_last_error());
    EXPECT(!path_exists(want_tmp), "temporary file left after commit");
    long n = read_all(path, back, sizeof back);
    EXPECT(n == (long)sizeof data && memcmp(back, data, sizeof data) == 0,
           "content after commit differs (%ld bytes)", n);
    EXPECT(file_exists(path) && !dir_exists(path), "file_exists/dir_exists on a file");

    /* overwrite: the old content stays visible until the new one is committed */
    unsigned char data2[100];
    for (size_t i = 0; i < sizeof data2; i++) data2[i] = (unsigned char)xorshift_next();
    REQUIRE(atomic_open(&af, path) == DR_OK, "reopen: %s", dr_last_error());
    fwrite(data2, 1, sizeof data2, af.fp);
    fflush(af.fp);
    n = read_all(path, back, sizeof back);
    EXPECT(n == (long)sizeof data && memcmp(back, data, sizeof data) == 0,
           "old content disturbed before commit");
    EXPECT(atomic_commit(&af) == DR_OK, "commit 2: %s", dr_last_error());
    n = read_all(path, back, sizeof back);
    EXPECT(n == (long)sizeof data2 && memcmp(back, data2, sizeof data2) == 0,
           "new content wrong after overwrite (%ld bytes)", n);

    /* atomic_write with random sizes, including empty */
    for (int rep = 0; rep < 20; rep++) {
        size_t len = rep == 0 ? 0 : (size_t)(xorshift_next() % sizeof data);
        for (size_t i = 0; i < len; i++) data[i] = (unsigned char)xorshift_next();
        EXPECT(atomic_write(path, data, len) == DR_OK, "atomic_write: %s", dr_last_error());
        n = read_all(path, back, sizeof back);
        EXPECT(n == (long)len && memcmp(back, data, len) == 0, "atomic_write of %zu bytes read %ld",
               len, n);
    }
    EXPECT(count_temps(g_dir) == 0, "temporary files left behind");
}

static void test_abort(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/aborted.bin", g_dir);
    AtomicFile af;
    REQUIRE(atomic_open(&af, path) == DR_OK, "open: %s", dr_last_error());
    fputs("partial", af.fp);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", af.tmp);
    atomic_abort(&af);
    EXPECT(!path_exists(path), "abort created the target");
    EXPECT(!path_exists(tmp), "abort left the temporary file");
    atomic_abort(&af); /* a second abort must be harmless */

    /* abort over an existing target leaves it untouched */
    EXPECT(atomic_write(path, "keep", 4) == DR_OK, "atomic_write: %s", dr_last_error());
    REQUIRE(atomic_open(&af, path) == DR_OK, "open: %s", dr_last_error());
    fputs("replacement", af.fp);
    atomic_abort(&af);
    unsigned char back[64];
    long n = read_all(path, back, sizeof back);
    EXPECT(n == 4 && memcmp(back, "keep", 4) == 0, "abort changed the existing target");
    EXPECT(count_temps(g_dir) == 0, "temporary files left behind after abort");
}

static void test_failures(void) {
    char path[512];
    AtomicFile af;

    /* missing directory */
    snprintf(path, sizeof path, "%s/no/such/dir/out.bin", g_dir);
    EXPECT(atomic_open(&af, path) == DR_ERR, "open into a missing directory succeeded");
    EXPECT(strstr(dr_last_error(), path) != NULL, "message does not name the path: '%s'",
           dr_last_error());
    EXPECT(atomic_write(path, "x", 1) == DR_ERR, "atomic_write into a missing directory succeeded");
    EXPECT(strstr(dr_last_error(), path) != NULL, "message does not name the path: '%s'",
           dr_last_error());
    char nodir[512];
    snprintf(nodir, sizeof nodir, "%s/no", g_dir);
    EXPECT(!path_exists(nodir) && !path_exists(path), "failure left something behind");

    /* a path component that is a regular file */
    char file[512];
    snprintf(file, sizeof file, "%s/plainfile", g_dir);
    EXPECT(atomic_write(file, "abc", 3) == DR_OK, "atomic_write: %s", dr_last_error());
    snprintf(path, sizeof path, "%s/plainfile/out.bin", g_dir);
    EXPECT(atomic_write(path, "x", 1) == DR_ERR, "writing under a regular file succeeded");
    EXPECT(strstr(dr_last_error(), path) != NULL, "message does not name the path: '%s'",
           dr_last_error());

    /* opening onto an existing directory fails at once, not at the rename after the work */
    char target_dir[512];
    snprintf(target_dir, sizeof target_dir, "%s/isdir", g_dir);
    EXPECT(make_dirs(target_dir) == DR_OK, "make_dirs: %s", dr_last_error());
    EXPECT(atomic_open(&af, target_dir) == DR_ERR, "opening onto a directory succeeded");
    EXPECT(strstr(dr_last_error(), "is a directory") != NULL, "message: '%s'", dr_last_error());

    /* a directory that appears while the file is open: the rename fails, the temporary file
     * must go */
    snprintf(target_dir, sizeof target_dir, "%s/becomes_dir", g_dir);
    REQUIRE(atomic_open(&af, target_dir) == DR_OK, "open: %s", dr_last_error());
    EXPECT(make_dirs(target_dir) == DR_OK, "make_dirs: %s", dr_last_error());
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", af.tmp);
    fputs("data", af.fp);
    EXPECT(atomic_commit(&af) == DR_ERR, "commit onto a directory succeeded");
    EXPECT(strstr(dr_last_error(), target_dir) != NULL, "message does not name the path: '%s'",
           dr_last_error());
    EXPECT(!path_exists(tmp), "failed commit left the temporary file");
    EXPECT(dir_exists(target_dir), "failed commit disturbed the directory");

    /* permission denied. Root ignores permission bits, so as root the write is done by a
     * child that has dropped to the "nobody" user. */
    char ro[400];
    snprintf(ro, sizeof ro, "%s/readonly", g_dir);
    EXPECT(make_dirs(ro) == DR_OK, "make_dirs: %s", dr_last_error());
    chmod(ro, 0555);
    chmod(g_dir, 0711);
    snprintf(path, sizeof path, "%s/out.bin", ro);
    int as_root = geteuid() == 0;
    fflush(stdout);
    pid_t pid = as_root ? fork() : 0;
    if (pid == 0) {
        if (as_root && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(77);
        int bad = 0;
        if (atomic_write(path, "x", 1) != DR_ERR) {
            printf("FAIL: write into a read-only directory succeeded\n");
            bad++;
        } else if (!strstr(dr_last_error(), path) || !strstr(dr_last_error(), "ermission")) {
            printf("FAIL: message does not name the path and the cause: '%s'\n", dr_last_error());
            bad++;
        }
        if (as_root) {
            fflush(stdout);
            _exit(bad);
        }
        EXPECT(bad == 0, "read-only directory case");
    } else if (pid > 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            printf("note: could not drop root privileges, read-only directory case skipped\n");
        else
            EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                   "read-only directory case failed in the unprivileged child");
    }
    EXPECT(!path_exists(path), "failed write left the target");
    chmod(ro, 0700);
    chmod(g_dir, 0700);

    EXPECT(atomic_open(&af, "") == DR_ERR, "empty path accepted");
    EXPECT(count_temps(g_dir) == 0, "temporary files left behind after failures");
}

static void test_make_dirs(void) {
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/a/b/c", g_dir);
    EXPECT(!dir_exists(p), "precondition");
    EXPECT(make_dirs(p) == DR_OK, "make_dirs: %s", dr_last_error());
    EXPECT(dir_exists(p) && !file_exists(p), "a/b/c not created");
    EXPECT(make_dirs(p) == DR_OK, "make_dirs on an existing directory: %s", dr_last_error());
    snprintf(q, sizeof q, "%s/a//b/d/", g_dir);
    EXPECT(make_dirs(q) == DR_OK, "make_dirs with '//' and trailing '/': %s", dr_last_error());
    snprintf(q, sizeof q, "%s/a/b/d", g_dir);
    EXPECT(dir_exists(q), "a/b/d not created");
    EXPECT(make_dirs("/") == DR_OK, "make_dirs(\"/\"): %s", dr_last_error());
    EXPECT(make_dirs("/tmp") == DR_OK, "make_dirs(\"/tmp\"): %s", dr_last_error());

    /* a component that is a file */
    snprintf(q, sizeof q, "%s/a/file", g_dir);
    EXPECT(atomic_write(q, "z", 1) == DR_OK, "atomic_write: %s", dr_last_error());
    snprintf(p, sizeof p, "%s/a/file/x/y", g_dir);
    EXPECT(make_dirs(p) == DR_ERR, "make_dirs through a file succeeded");
    EXPECT(strstr(dr_last_error(), p) != NULL, "message does not name the path: '%s'",
           dr_last_error());
    EXPECT(make_dirs(q) == DR_ERR, "make_dirs onto an existing file succeeded");
    EXPECT(make_dirs("") == DR_ERR, "make_dirs(\"\") succeeded");

    snprintf(p, sizeof p, "%s/nothing", g_dir);
    EXPECT(!file_exists(p) && !dir_exists(p), "exists on a missing path");
    EXPECT(dir_exists(g_dir) && !file_exists(g_dir), "dir_exists/file_exists on a directory");
}

/* file_copy: the same bytes across several read chunks; a missing source or an unwritable
 * target fails naming that path and leaves no target or temporary file. */
static void test_copy(void) {
    char src[512], dst[512], bad[512];
    snprintf(src, sizeof src, "%s/copy_src.bin", g_dir);
    snprintf(dst, sizeof dst, "%s/copy_dst.bin", g_dir);
    static unsigned char data[100003], back[100100];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)xorshift_next();
    EXPECT(atomic_write(src, data, sizeof data) == DR_OK, "copy: source written");
    EXPECT(file_copy(src, dst) == DR_OK, "copy: succeeds");
    long n = read_all(dst, back, sizeof back);
    EXPECT(n == (long)sizeof data && !memcmp(back, data, sizeof data),
           "copy: the same %zu bytes (read %ld)", sizeof data, n);
    snprintf(bad, sizeof bad, "%s/no_such_file", g_dir);
    snprintf(dst, sizeof dst, "%s/copy_dst2.bin", g_dir);
    EXPECT(file_copy(bad, dst) == DR_ERR && strstr(dr_last_error(), bad) && !path_exists(dst),
           "copy: a missing source fails naming it, no target");
    snprintf(bad, sizeof bad, "%s/no_such_dir/x.bin", g_dir);
    EXPECT(file_copy(src, bad) == DR_ERR && strstr(dr_last_error(), bad) && count_temps(g_dir) == 0,
           "copy: an unwritable target fails naming it, no temporary file");
}

/* remove_tree: a tree of files and directories goes whole; a link inside goes, not what it
 * points to; a path that does not exist is no error. */
static void test_remove_tree(void) {
    char top[300], p[600], outside[600], link[600];
    snprintf(top, sizeof top, "%s/tree", g_dir);
    snprintf(p, sizeof p, "%s/a/b/c", top);
    EXPECT(make_dirs(p) == DR_OK, "tree: made");
    const char *files[] = {"a/x", "a/b/y", "a/b/c/z", "w"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", top, files[i]);
        EXPECT(atomic_write(p, "data", 4) == DR_OK, "tree: %s written", files[i]);
    }
    snprintf(outside, sizeof outside, "%s/kept.bin", g_dir);
    EXPECT(atomic_write(outside, "keep", 4) == DR_OK, "tree: outside file written");
    snprintf(link, sizeof link, "%s/a/b/to_outside", top);
    EXPECT(symlink(outside, link) == 0, "tree: link made");
    EXPECT(remove_tree(top) == DR_OK && !path_exists(top), "tree: removed whole");
    EXPECT(file_exists(outside), "tree: the link's target is kept");
    EXPECT(remove_tree(top) == DR_OK, "tree: a missing path is no error");
}

int main(void) {
    test_quiet = 1;
    xorshift_seed(0x9e3779b97f4a7c15ull);
    if (test_mkdtemp(g_dir, sizeof g_dir, "/tmp/denserl_test_fileio_XXXXXX") != 0) return 1;
    test_commit_visibility();
    test_abort();
    test_failures();
    test_make_dirs();
    test_copy();
    test_remove_tree();

    test_rmtree(g_dir);
    return test_summary();
}
