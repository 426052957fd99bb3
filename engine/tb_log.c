/* metrics.jsonl mirrored into a TensorBoard event file (tb_log.h). */
#include "tb_log.h"
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../runtime/error.h"
#include "../runtime/fileio.h"

static double unix_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The numbers of object o as scalars tagged prefix/key (objects inside: prefix/key/...). */
static void add_numbers(TfEvents *ev, const char *prefix, json_t *o) {
    const char *key;
    json_t *v;
    char tag[512];
    json_object_foreach(o, key, v) {
        if (!strcmp(key, "phase") || !strcmp(key, "step")) continue;
        snprintf(tag, sizeof tag, "%s/%s", prefix, key);
        if (json_is_number(v))
            tfevents_add(ev, tag, json_number_value(v));
        else if (json_is_object(v))
            add_numbers(ev, tag, v);
    }
}

/* One metrics line as one event; lines without a step or not JSON objects are passed over. */
static int mirror_line(TbLog *t, const char *line) {
    json_t *j = json_loads(line, 0, NULL);
    json_t *step = j ? json_object_get(j, "step") : NULL;
    int st = 0;
    if (json_is_integer(step)) {
        const char *phase = json_string_value(json_object_get(j, "phase"));
        add_numbers(&t->ev, phase ? phase : "metrics", j);
        st = tfevents_write(&t->ev, (long long)json_integer_value(step), unix_now());
    }
    json_decref(j);
    return st;
}

/* The whole metrics lines past t->done into the event file; DR_ERR when it cannot be
 * written. */
static int mirror_new_lines(TbLog *t) {
    FILE *f = fopen(t->metrics, "rb");
    if (!f) return DR_OK; /* nothing written yet */
    int st = fseek(f, t->done, SEEK_SET) == 0 ? DR_OK : DR_ERR;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (st == DR_OK && (n = getline(&line, &cap, f)) > 0 && line[n - 1] == '\n') {
        if (mirror_line(t, line)) st = DR_ERR;
        t->done += n;
    }
    free(line);
    fclose(f);
    return st;
}

void tb_sync(TbLog *t) {
    if (!t->on || mirror_new_lines(t) == DR_OK) return;
    /* metrics.jsonl stays the record: a full disk or a lost mount stops the mirror, not the run */
    fprintf(stderr, "warning: %s: cannot write; TensorBoard's mirror of %s stops here\n", t->path,
            t->metrics);
    t->on = 0;
}

/* Removes DIR's event files. */
static void remove_events(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096 + 256];
    while ((e = readdir(d)))
        if (strstr(e->d_name, "tfevents")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    closedir(d);
}

int tb_open(TbLog *t, const char *run_dir, int on) {
    memset(t, 0, sizeof *t);
    if (!on) return DR_OK;
    char dir[4096], tmp[4300];
    snprintf(t->metrics, sizeof t->metrics, "%s/metrics.jsonl", run_dir);
    snprintf(dir, sizeof dir, "%s/tensorboard", run_dir);
    if (make_dirs(dir)) return DR_ERR;
    remove_events(dir);
    snprintf(t->path, sizeof t->path, "%s/events.out.tfevents.%lld.denserl", dir,
             (long long)time(NULL));
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", t->path, (int)getpid());
    t->fp = fopen(tmp, "wb");
    if (!t->fp) return dr_error("%s: cannot open for writing", tmp);
    tfevents_init(&t->ev, t->fp, 1);
    t->on = 1;
    if (mirror_new_lines(t) || rename(tmp, t->path) != 0) {
        const int err = dr_error("%s: cannot write the TensorBoard event file", t->path);
        tb_close(t);
        remove(tmp);
        return err;
    }
    return DR_OK;
}

void tb_close(TbLog *t) {
    if (t->fp) fclose(t->fp);
    tfevents_free(&t->ev);
    memset(t, 0, sizeof *t);
}
