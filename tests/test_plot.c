/* Tests of the SVG chart writer (runtime/plot.h). Each chart is parsed by Python's XML
 * parser, which also extracts what a reader of the chart would see (tick labels, legend and
 * axis texts, the plot-area rectangle, every path's class and geometry) into JSON; the checks
 * then compare the drawn geometry against an independent float64 mapping of the data onto
 * the axis range that the tick labels announce. Needs python3 (skipped, 77, without it).
 * Usage: test_plot [DIR] keeps the charts in DIR instead of a temporary folder. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "runtime/error.h"
#include "runtime/fileio.h"
#include "runtime/plot.h"
#include "testutil.h"

static char g_dir[4096];
static char g_py[4200];

static const char *SUMMARY_PY =
    "import json, sys, xml.etree.ElementTree as E\n"
    "NS = '{http://www.w3.org/2000/svg}'\n"
    "r = E.parse(sys.argv[1]).getroot()\n"
    "def texts(cls):\n"
    "    return [''.join(t.itertext()) for g in r.iter(NS + 'g') if g.get('class') == cls\n"
    "            for t in g.iter(NS + 'text')]\n"
    "area = [[float(x.get(k)) for k in ('x', 'y', 'width', 'height')]\n"
    "        for x in r.iter(NS + 'rect') if x.get('class') == 'plot-area']\n"
    "out = {'tag': r.tag, 'viewBox': r.get('viewBox'), 'area': area[0] if area else None,\n"
    "       'paths': [{'class': p.get('class'), 'd': p.get('d'), 'stroke': p.get('stroke'),\n"
    "                  'fill': p.get('fill')} for p in r.iter(NS + 'path')],\n"
    "       'polylines': len(list(r.iter(NS + 'polyline'))),\n"
    "       'points': [[float(c.get('cx')), float(c.get('cy'))] for c in r.iter(NS + 'circle')\n"
    "                  if c.get('class') == 'point'],\n"
    "       'ticks_x': texts('ticks-x'), 'ticks_y': texts('ticks-y'),\n"
    "       'ticks_yr': texts('ticks-y-right'), 'legend': texts('legend'),\n"
    "       'labels': texts('labels'), 'title': texts('title')}\n"
    "json.dump(out, open(sys.argv[2], 'w'))\n";

/* Parses PATH with python and returns the summary (NULL if it is not well-formed XML). */
static json_t *summarise(const char *svg) {
    char json_path[4200], cmd[13000];
    snprintf(json_path, sizeof json_path, "%s/summary.json", g_dir);
    unlink(json_path);
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s'", g_py, svg, json_path);
    if (system(cmd) != 0) return NULL;
    json_error_t e;
    return json_load_file(json_path, 0, &e);
}

static const char *jstr(const json_t *v) {
    return json_string_value(v) ? json_string_value(v) : "";
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    return b;
}

static int count_class(const json_t *sum, const char *cls) {
    int n = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(sum, "paths"), i, p) {
        n += !strcmp(jstr(json_object_get(p, "class")), cls);
    }
    return n;
}

/* The d attribute of the k-th path of class CLS. */
static const char *path_d(const json_t *sum, const char *cls, int k) {
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(sum, "paths"), i, p) {
        if (strcmp(jstr(json_object_get(p, "class")), cls)) continue;
        if (k-- == 0) return json_string_value(json_object_get(p, "d"));
    }
    return NULL;
}

/* Path data as absolute points: the command letter of each (M, L; "h0" repeats the last
 * point as 'h'; Z is skipped). Returns the point count. */
typedef struct {
    char cmd;
    double x, y;
} Pt;

static int parse_d(const char *d, Pt *pts, int max) {
    int n = 0;
    double lx = 0, ly = 0;
    while (d && *d && n < max) {
        char c = *d;
        if (c == ' ') {
            d++;
            continue;
        }
        char *end;
        if (c == 'M' || c == 'L') {
            double x = strtod(d + 1, &end);
            double y = strtod(end, &end);
            pts[n++] = (Pt){c, x, y};
            lx = x, ly = y;
            d = end;
        } else if (c == 'h') {
            double dx = strtod(d + 1, &end);
            pts[n++] = (Pt){'h', lx + dx, ly};
            d = end;
        } else {
            d++; /* Z */
        }
    }
    return n;
}

static int count_cmd(const Pt *p, int n, char c) {
    int k = 0;
    for (int i = 0; i < n; i++) k += p[i].cmd == c;
    return k;
}

/* Every lone point (a subpath "M x y h0") has a marker circle at the same place, and no
 * other point has one. */
static int markers_match(const json_t *sum) {
    Pt lone[64], p[256];
    int nl = 0;
    for (int k = 0; path_d(sum, "line", k); k++) {
        int n = parse_d(path_d(sum, "line", k), p, 256);
        for (int i = 0; i < n && nl < 64; i++)
            if (p[i].cmd == 'h') lone[nl++] = p[i];
    }
    json_t *pts = json_object_get(sum, "points");
    if ((int)json_array_size(pts) != nl) return 0;
    for (int i = 0; i < nl; i++) {
        json_t *c = json_array_get(pts, (size_t)i);
        if (fabs(json_real_value(json_array_get(c, 0)) - lone[i].x) > 1e-9 ||
            fabs(json_real_value(json_array_get(c, 1)) - lone[i].y) > 1e-9)
            return 0;
    }
    return 1;
}

static double area_v(const json_t *sum, int k) {
    return json_real_value(json_array_get(json_object_get(sum, "area"), (size_t)k));
}

/* Tick labels of one axis as numbers; checks they are evenly spaced by a 1-2-5 step and
 * returns the count (0 on any failure). */
static int read_ticks(const json_t *sum, const char *key, double *ticks, double *step) {
    json_t *arr = json_object_get(sum, key);
    int n = (int)json_array_size(arr);
    if (n < 2 || n > 32) return 0;
    for (int i = 0; i < n; i++) {
        char *end;
        const char *s = json_string_value(json_array_get(arr, (size_t)i));
        ticks[i] = strtod(s, &end);
        if (end == s || *end) return 0;
    }
    *step = ticks[1] - ticks[0];
    double mag = pow(10, floor(log10(*step) + 1e-9)), m = *step / mag;
    if (!(fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6)) return 0;
    for (int i = 1; i < n; i++)
        if (fabs(ticks[i] - ticks[i - 1] - *step) > 1e-6 * *step) return 0;
    return n;
}

static void svg_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s.svg", g_dir, name);
}

/* printf spells non-finite numbers nan/inf; in words ("dominant") a letter comes before. */
static int no_bad_numbers(const char *file) {
    char *b = read_all(file);
    if (!b) return 0;
    int bad = 0;
    for (char *p = b; *p; p++) {
        if ((strncasecmp(p, "nan", 3) && strncasecmp(p, "inf", 3)) || p == b) continue;
        char c = p[-1];
        bad |= !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
    }
    free(b);
    return !bad;
}

/* Random series on two axes with random offsets and scales: every drawn point must sit at
 * px + (x - lo)/(hi - lo)·pw (and likewise for y) where lo/hi are the first and last tick
 * labels, which must be nice and must enclose the data tightly (less than a step of slack
 * on each side). Coordinates are printed to 0.01 px, ticks to their step's decimals. */
static void test_mapping(int trial) {
    enum { N = 37 };
    double x[N], y1[N], y2[N], lo[N], hi[N];
    double xoff = (xorshift_u01() - 0.5) * 2000, xs = pow(10, xorshift_u01() * 6 - 3);
    double yoff = (xorshift_u01() - 0.5) * 200, ys = pow(10, xorshift_u01() * 6 - 3);
    double roff = (xorshift_u01() - 0.5) * 20, rs = pow(10, xorshift_u01() * 4 - 2);
    for (int i = 0; i < N; i++) {
        x[i] = xoff + xs * (i + 0.3 * xorshift_u01());
        y1[i] = yoff + ys * xorshift_u01();
        double w = 0.2 * ys * xorshift_u01();
        lo[i] = y1[i] - w, hi[i] = y1[i] + w;
        y2[i] = roff + rs * xorshift_u01();
    }
    PlotSeries s[2] = {{.label = "left", .x = x, .y = y1, .n = N, .lo = lo, .hi = hi},
                       {.label = "right", .x = x, .y = y2, .n = N, .right_axis = 1}};
    PlotSpec sp = {.title = "mapping", .xlabel = "x", .ylabel = "y", .ylabel_right = "y2"};
    char f[4200], name[32];
    snprintf(name, sizeof name, "mapping%d", trial);
    svg_path(f, sizeof f, name);
    EXPECT(plot_svg(f, &sp, s, 2) == DR_OK, "%s", dr_last_error());
    json_t *sum = summarise(f);
    EXPECT(sum != NULL, "trial %d: not well-formed XML", trial);
    if (!sum) return;
    double tx[32], ty[32], tr[32], sx, sy, sr;
    int nx = read_ticks(sum, "ticks_x", tx, &sx), ny = read_ticks(sum, "ticks_y", ty, &sy);
    int nr = read_ticks(sum, "ticks_yr", tr, &sr);
    EXPECT(nx >= 3 && ny >= 3 && nr >= 3, "trial %d: ticks not nice: %d %d %d", trial, nx, ny, nr);
    if (nx < 3 || ny < 3 || nr < 3) {
        json_decref(sum);
        return;
    }
    double xmin = x[0], xmax = x[N - 1], ymin = INFINITY, ymax = -INFINITY, rmin = INFINITY,
           rmax = -INFINITY;
    for (int i = 0; i < N; i++) {
        ymin = fmin(ymin, lo[i]), ymax = fmax(ymax, hi[i]);
        rmin = fmin(rmin, y2[i]), rmax = fmax(rmax, y2[i]);
    }
    double X0 = tx[0], X1 = tx[nx - 1], Y0 = ty[0], Y1 = ty[ny - 1], R0 = tr[0], R1 = tr[nr - 1];
    EXPECT(X0 <= xmin && X0 > xmin - sx && X1 >= xmax && X1 < xmax + sx,
           "x axis [%g, %g] step %g for data [%g, %g]", X0, X1, sx, xmin, xmax);
    EXPECT(Y0 <= ymin && Y0 > ymin - sy && Y1 >= ymax && Y1 < ymax + sy,
           "y axis [%g, %g] step %g for data [%g, %g]", Y0, Y1, sy, ymin, ymax);
    EXPECT(R0 <= rmin && R0 > rmin - sr && R1 >= rmax && R1 < rmax + sr,
           "right axis [%g, %g] step %g for data [%g, %g]", R0, R1, sr, rmin, rmax);
    double px = area_v(sum, 0), py = area_v(sum, 1), pw = area_v(sum, 2), ph = area_v(sum, 3);
    EXPECT(count_class(sum, "line") == 2 && count_class(sum, "band") == 1, "paths %d %d",
           count_class(sum, "line"), count_class(sum, "band"));
    Pt p[4 * N];
    double err = 0;
    for (int k = 0; k < 2; k++) {
        int n = parse_d(path_d(sum, "line", k), p, 4 * N);
        EXPECT(n == N && count_cmd(p, n, 'M') == 1, "series %d: %d points", k, n);
        for (int i = 0; i < n && i < N; i++) {
            double ex = px + (x[i] - X0) / (X1 - X0) * pw;
            double ey = k == 0 ? py + ph - (y1[i] - Y0) / (Y1 - Y0) * ph
                               : py + ph - (y2[i] - R0) / (R1 - R0) * ph;
            err = fmax(err, fmax(fabs(p[i].x - ex), fabs(p[i].y - ey)));
        }
    }
    /* the band: hi forward then lo backward */
    int n = parse_d(path_d(sum, "band", 0), p, 4 * N);
    EXPECT(n == 2 * N, "band has %d points", n);
    for (int i = 0; i < n && i < 2 * N; i++) {
        int j = i < N ? i : 2 * N - 1 - i;
        double v = i < N ? hi[j] : lo[j];
        double ex = px + (x[j] - X0) / (X1 - X0) * pw, ey = py + ph - (v - Y0) / (Y1 - Y0) * ph;
        err = fmax(err, fmax(fabs(p[i].x - ex), fabs(p[i].y - ey)));
    }
    EXPECT(err < 0.011, "trial %d: largest pixel error %g", trial, err);
    json_decref(sum);
}

static void test_labels_and_counts(void) {
    const char *odd = "acc <train> & \"co\" 'x'\x01 \xff \xce\xbc\xc2\xb1\xcf\x83";
    const char *odd_parsed = "acc <train> & \"co\" 'x' ? \xce\xbc\xc2\xb1\xcf\x83";
    double x[5] = {1, 2, 3, 4, 5}, a[5] = {0.1, 0.2, 0.3, 0.4, 0.5}, b[5] = {3, 1, 4, 1, 5};
    double lo[5] = {0, 0.1, 0.2, 0.3, 0.4}, hi[5] = {0.2, 0.3, 0.4, 0.5, 0.6};
    PlotSeries s[4] = {{.label = odd, .x = x, .y = a, .n = 5, .lo = lo, .hi = hi},
                       {.label = "reward", .x = x, .y = b, .n = 5, .right_axis = 1},
                       {.label = "unlabelled next", .y = b, .n = 5},
                       {.label = NULL, .x = x, .y = a, .n = 5}};
    PlotSpec sp = {
        .title = "T <1> & 2", .xlabel = "step", .ylabel = "accuracy", .ylabel_right = "reward"};
    char f[4200];
    svg_path(f, sizeof f, "labels");
    EXPECT(plot_svg(f, &sp, s, 4) == DR_OK, "%s", dr_last_error());
    json_t *sum = summarise(f);
    EXPECT(sum != NULL, "labels chart is not well-formed XML");
    if (!sum) return;
    EXPECT(!strcmp(jstr(json_object_get(sum, "tag")), "{http://www.w3.org/2000/svg}svg"),
           "root is not an svg element in the SVG namespace");
    EXPECT(!strcmp(jstr(json_object_get(sum, "viewBox")), "0 0 800 450"), "viewBox %s",
           json_string_value(json_object_get(sum, "viewBox")));
    json_t *leg = json_object_get(sum, "legend");
    EXPECT(json_array_size(leg) == 3, "legend has %zu entries (NULL labels are left out)",
           json_array_size(leg));
    EXPECT(!strcmp(jstr(json_array_get(leg, 0)), odd_parsed), "legend[0] reads back as '%s'",
           json_string_value(json_array_get(leg, 0)));
    EXPECT(strstr(jstr(json_array_get(leg, 1)), "reward") != NULL, "legend[1] '%s'",
           json_string_value(json_array_get(leg, 1)));
    EXPECT(!strcmp(jstr(json_array_get(json_object_get(sum, "title"), 0)), "T <1> & 2"), "title");
    EXPECT(json_array_size(json_object_get(sum, "labels")) == 3, "axis labels");
    EXPECT(count_class(sum, "line") == 4 && count_class(sum, "band") == 1 &&
               json_array_size(json_object_get(sum, "paths")) == 5,
           "expected 4 line paths, 1 band, nothing else: %d %d %zu", count_class(sum, "line"),
           count_class(sum, "band"), json_array_size(json_object_get(sum, "paths")));
    EXPECT(json_integer_value(json_object_get(sum, "polylines")) == 0, "no polylines");
    /* series 2 has no x: it is drawn at 0..4, so the x axis reaches 0 */
    EXPECT(json_array_size(json_object_get(sum, "ticks_yr")) >= 3, "right axis ticks");
    const char *first_x = json_string_value(json_array_get(json_object_get(sum, "ticks_x"), 0));
    EXPECT(first_x && atof(first_x) == 0, "x axis starts at %s", first_x ? first_x : "?");
    char *raw = read_all(f);
    EXPECT(raw && strstr(raw, "acc &lt;train&gt; &amp; &quot;co&quot;"), "label escaped in file");
    EXPECT(raw && !strchr(raw, '\x01'), "control character dropped");
    /* distinct colours for the four lines */
    const char *c[4] = {0};
    int k = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(sum, "paths"), i, p) {
        if (!strcmp(jstr(json_object_get(p, "class")), "line") && k < 4)
            c[k++] = json_string_value(json_object_get(p, "stroke"));
    }
    int distinct = k == 4;
    for (int u = 0; u < k; u++)
        for (int v = u + 1; v < k; v++) distinct &= c[u] && c[v] && strcmp(c[u], c[v]) != 0;
    EXPECT(distinct, "line colours are not distinct");
    free(raw);
    json_decref(sum);
}

static void test_nan_breaks(void) {
    double y[9] = {1, 2, NAN, 4, 5, NAN, 7, INFINITY, 9};
    double y2[3] = {NAN, NAN, NAN};
    double xs[9] = {0, 1, 2, 3, NAN, 5, 6, 7, 8};
    PlotSeries s[3] = {{.label = "gappy", .y = y, .n = 9},
                       {.label = "all missing", .y = y2, .n = 3},
                       {.label = "gap in x", .x = xs, .y = y, .n = 9}};
    char f[4200];
    svg_path(f, sizeof f, "nan");
    EXPECT(plot_svg(f, NULL, s, 3) == DR_OK, "%s", dr_last_error());
    json_t *sum = summarise(f);
    EXPECT(sum != NULL, "NaN chart is not well-formed XML");
    if (!sum) return;
    EXPECT(no_bad_numbers(f), "nan/inf printed into the SVG");
    EXPECT(count_class(sum, "line") == 2, "an all-NaN series draws nothing: %d lines",
           count_class(sum, "line"));
    Pt p[32];
    /* 1 2 | 4 5 | 7 | 9: four runs, the two single points drawn as dots */
    int n = parse_d(path_d(sum, "line", 0), p, 32);
    EXPECT(count_cmd(p, n, 'M') == 4 && count_cmd(p, n, 'L') == 2 && count_cmd(p, n, 'h') == 2,
           "gappy: %d M, %d L, %d dots", count_cmd(p, n, 'M'), count_cmd(p, n, 'L'),
           count_cmd(p, n, 'h'));
    /* with x[4] NaN as well: 1 2 | 4 | 7 | 9 */
    n = parse_d(path_d(sum, "line", 1), p, 32);
    EXPECT(count_cmd(p, n, 'M') == 4 && count_cmd(p, n, 'L') == 1 && count_cmd(p, n, 'h') == 3,
           "nan x: %d M, %d L, %d dots", count_cmd(p, n, 'M'), count_cmd(p, n, 'L'),
           count_cmd(p, n, 'h'));
    EXPECT(markers_match(sum), "lone points and markers differ");
    json_decref(sum);
}

/* One point, a flat series, an empty chart: no division by a zero range anywhere. */
static void test_degenerate(void) {
    char f[4200];
    double one_x = 5, one_y = 0.25, flat[4] = {3, 3, 3, 3}, zero[3] = {0, 0, 0};
    struct {
        const char *name;
        PlotSeries s;
        int n_series;
    } cases[] = {
        {"single", {.label = "one", .x = &one_x, .y = &one_y, .n = 1}, 1},
        {"flat", {.label = "flat", .y = flat, .n = 4}, 1},
        {"zeros", {.label = "zeros", .y = zero, .n = 3, .lo = zero, .hi = zero}, 1},
        {"empty", {0}, 0},
        {"nopoints", {.label = "none", .y = flat, .n = 0}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        svg_path(f, sizeof f, cases[c].name);
        EXPECT(plot_svg(f, NULL, &cases[c].s, cases[c].n_series) == DR_OK, "%s: %s", cases[c].name,
               dr_last_error());
        json_t *sum = summarise(f);
        EXPECT(sum != NULL, "%s: not well-formed XML", cases[c].name);
        if (!sum) continue;
        EXPECT(no_bad_numbers(f), "%s: nan/inf printed", cases[c].name);
        double t[32], step;
        EXPECT(read_ticks(sum, "ticks_y", t, &step) >= 2 && read_ticks(sum, "ticks_x", t, &step),
               "%s: axes without nice ticks", cases[c].name);
        int want = cases[c].s.n > 0 ? 1 : 0;
        EXPECT(markers_match(sum), "%s: lone points and markers differ", cases[c].name);
        EXPECT(count_class(sum, "line") == want, "%s: %d lines", cases[c].name,
               count_class(sum, "line"));
        if (want) {
            Pt p[8];
            int n = parse_d(path_d(sum, "line", 0), p, 8);
            double px = area_v(sum, 0), py = area_v(sum, 1), pw = area_v(sum, 2),
                   ph = area_v(sum, 3);
            int inside = n > 0;
            for (int i = 0; i < n; i++)
                inside &= p[i].x >= px && p[i].x <= px + pw && p[i].y > py && p[i].y < py + ph &&
                          p[i].y == p[0].y;
            EXPECT(inside, "%s: points not inside the plot area on one level", cases[c].name);
            if (cases[c].s.n == 1)
                EXPECT(n == 2 && p[1].cmd == 'h' &&
                           json_array_size(json_object_get(sum, "points")) == 1,
                       "%s: a single point is drawn as a dot with a marker", cases[c].name);
        }
        json_decref(sum);
    }
}

/* A fixed range: ticks stay inside it, and a point far outside is clamped to printable
 * coordinates (the clip path hides it). */
static void test_fixed_range(void) {
    double y[4] = {0.5, 1e200, -3, 0.75};
    PlotSeries s = {.label = "acc", .y = y, .n = 4};
    PlotSpec sp = {.ymin = 0, .ymax = 1};
    char f[4200];
    svg_path(f, sizeof f, "fixed");
    EXPECT(plot_svg(f, &sp, &s, 1) == DR_OK, "%s", dr_last_error());
    json_t *sum = summarise(f);
    EXPECT(sum != NULL, "fixed-range chart is not well-formed XML");
    if (!sum) return;
    double t[32], step;
    int n = read_ticks(sum, "ticks_y", t, &step);
    EXPECT(n >= 3 && t[0] == 0 && fabs(t[n - 1] - 1) < 1e-12, "ticks %d from %g to %g", n, t[0],
           n ? t[n - 1] : 0);
    Pt p[8];
    int np = parse_d(path_d(sum, "line", 0), p, 8);
    double py = area_v(sum, 1), ph = area_v(sum, 3);
    EXPECT(np == 4 && fabs(p[0].y - (py + ph / 2)) < 0.011 && fabs(p[3].y - (py + ph / 4)) < 0.011,
           "fixed mapping: %g %g for area %g+%g", p[0].y, p[3].y, py, ph);
    EXPECT(np == 4 && fabs(p[1].y) <= 1e6 && p[2].y > py + ph, "out-of-range points: %g %g", p[1].y,
           p[2].y);
    json_decref(sum);
}

static void test_errors(void) {
    double y[2] = {1, 2};
    char f[4200];
    svg_path(f, sizeof f, "bad");
    PlotSeries no_y = {.label = "x", .n = 2};
    EXPECT(plot_svg(f, NULL, &no_y, 1) == DR_ERR && strstr(dr_last_error(), f), "missing y: %s",
           dr_last_error());
    PlotSeries half_band = {.y = y, .n = 2, .lo = y};
    EXPECT(plot_svg(f, NULL, &half_band, 1) == DR_ERR, "band with lo only");
    PlotSeries ok_s = {.y = y, .n = 2};
    PlotSpec bad_range = {.ymin = 2, .ymax = 1};
    EXPECT(plot_svg(f, &bad_range, &ok_s, 1) == DR_ERR, "ymin > ymax");
    PlotSpec nan_range = {.ymin = 0, .ymax = NAN};
    EXPECT(plot_svg(f, &nan_range, &ok_s, 1) == DR_ERR, "NaN ymax");
    EXPECT(plot_svg(f, NULL, NULL, 1) == DR_ERR, "NULL series");
    EXPECT(plot_svg(NULL, NULL, &ok_s, 1) == DR_ERR, "NULL path");
    EXPECT(!file_exists(f), "a failed call left %s behind", f);
    char nodir[4200];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.svg", g_dir);
    EXPECT(plot_svg(nodir, NULL, &ok_s, 1) == DR_ERR && strstr(dr_last_error(), nodir),
           "unwritable path: %s", dr_last_error());
}

int main(int argc, char **argv) {
    if (system("python3 -c 'import xml.etree.ElementTree' >/dev/null 2>&1") != 0) {
        printf("python3 not found: skipped\n");
        return 77;
    }
    test_quiet = 1;
    xorshift_seed(0x9E3779B97F4A7C15ull);
    int keep = argc > 1;
    if (keep) {
        snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
        if (make_dirs(g_dir) != DR_OK) return fprintf(stderr, "%s\n", dr_last_error()), 1;
    } else {
        if (test_mkdtemp(g_dir, sizeof g_dir, "/tmp/test_plot.XXXXXX") != 0) return 1;
    }
    snprintf(g_py, sizeof g_py, "%s/summary.py", g_dir);
    FILE *py = fopen(g_py, "w");
    if (!py) return perror(g_py), 1;
    fputs(SUMMARY_PY, py);
    fclose(py);

    test_labels_and_counts();
    test_nan_breaks();
    test_degenerate();
    test_fixed_range();
    test_errors();
    for (int t = 0; t < 12; t++) test_mapping(t);

    if (!keep) test_rmtree(g_dir);
    return test_summary();
}
