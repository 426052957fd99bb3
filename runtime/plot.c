/* SVG line charts for run reports. The layout is computed once from estimated text widths
 * (no font metrics are available without a renderer), then the chart is written in
 * back-to-front order: grid, bands, lines, axes, labels, legend. Every number printed into
 * the SVG is finite and every text run is escaped, so the file is always valid XML. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "error.h"
#include "fileio.h"
#include "plot.h"

#define PLOT_MAX_TICKS 32
#define CLIP_PAD       3.0
#define PLOT_FONT      "DejaVu Sans, Helvetica, Arial, sans-serif"

enum { FS_TICK = 11, FS_LABEL = 13, FS_TITLE = 15, FS_LEGEND = 12 };

/* Tableau 10: distinct for most colour-vision deficiencies and readable on white. */
static const char *const COLOURS[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define N_COLOURS ((int)(sizeof COLOURS / sizeof COLOURS[0]))
/* Past ten series the colours repeat, so the line style has to tell them apart. */
static const char *const DASHES[] = {NULL, "7 4", "2 3", "9 3 2 3"};
#define N_DASHES ((int)(sizeof DASHES / sizeof DASHES[0]))

typedef struct {
    double lo, hi; /* drawn range */
    double step;
    int nt;
    double ticks[PLOT_MAX_TICKS];
} Axis;

/* Values this large would overflow the pixel mapping; they count as missing. */
static int ok(double v) {
    return isfinite(v) && fabs(v) < 1e300;
}

static double nice_step(double span, int target) {
    double raw = span / (target > 0 ? target : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double m = f <= 1.0 + 1e-9 ? 1 : f <= 2.0 + 1e-9 ? 2 : f <= 5.0 + 1e-9 ? 5 : 10;
    return m * mag;
}

static void axis_ticks(Axis *a) {
    double first = ceil(a->lo / a->step - 1e-9), last = floor(a->hi / a->step + 1e-9);
    a->nt = 0;
    for (double i = first; i <= last && a->nt < PLOT_MAX_TICKS; i += 1) {
        double v = i * a->step;
        if (fabs(v) < a->step * 1e-9) v = 0; /* no "-0" labels */
        a->ticks[a->nt++] = v;
    }
}

/* From data: the smallest range of whole steps that covers [dlo, dhi]. A flat or empty
 * range is widened first so the step is never zero. */
static void axis_auto(Axis *a, double dlo, double dhi, int target) {
    if (!(dlo <= dhi)) dlo = 0, dhi = 1;
    if (dhi - dlo <= 1e-12 * fmax(fabs(dlo), fabs(dhi))) {
        double c = 0.5 * (dlo + dhi), pad = c == 0 ? 1 : 0.1 * fabs(c);
        dlo = c - pad, dhi = c + pad;
    }
    a->step = nice_step(dhi - dlo, target);
    a->lo = floor(dlo / a->step + 1e-9) * a->step;
    a->hi = ceil(dhi / a->step - 1e-9) * a->step;
    if (a->hi <= a->lo) a->hi = a->lo + a->step;
    axis_ticks(a);
}

static void axis_fixed(Axis *a, double lo, double hi, int target) {
    a->lo = lo, a->hi = hi;
    a->step = nice_step(hi - lo, target);
    axis_ticks(a);
}

static void fmt_tick(char *buf, size_t n, double v, double step) {
    int k = (int)floor(log10(step) + 1e-9);
    int dec = k < 0 ? -k : 0;
    if (dec > 6 || fabs(v) >= 1e7)
        snprintf(buf, n, "%.3g", v);
    else
        snprintf(buf, n, "%.*f", dec, v);
}

/* Code points, not bytes, so UTF-8 labels are measured fairly. */
static int text_len(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* DejaVu Sans averages a little over half an em per character. */
static double text_w(const char *s, int font_size) {
    return 0.6 * font_size * text_len(s);
}

/* XML text: the five special characters become entities, control characters that XML 1.0
 * forbids are dropped, and bytes that are not valid UTF-8 become '?'. */
static void put_text(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c == '&')
                fputs("&amp;", f);
            else if (c == '<')
                fputs("&lt;", f);
            else if (c == '>')
                fputs("&gt;", f);
            else if (c == '"')
                fputs("&quot;", f);
            else if (c == '\'')
                fputs("&apos;", f);
            else if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
                fputc((int)c, f);
            p++;
            continue;
        }
        int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        int valid = len > 0;
        for (int i = 1; valid && i < len; i++) valid = (p[i] & 0xC0) == 0x80;
        if (valid) {
            unsigned cp = len == 2   ? (c & 0x1F) << 6 | (p[1] & 0x3F)
                          : len == 3 ? (c & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F)
                                     : (c & 0x07) << 18 | (p[1] & 0x3F) << 12 | (p[2] & 0x3F) << 6 |
                                           (p[3] & 0x3F);
            unsigned min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
            /* overlong forms, surrogates and the two XML non-characters are not allowed */
            valid = cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) &&
                    cp != 0xFFFE && cp != 0xFFFF;
        }
        if (valid) {
            fwrite(p, 1, (size_t)len, f);
            p += len;
        } else {
            fputc('?', f);
            p++;
        }
    }
}

typedef struct {
    double px, py, pw, ph; /* plot area */
    Axis x, yl, yr;
} Frame;

/* Far-off values (a fixed y range with data outside it) stay printable; the clip path
 * hides them anyway. */
static double clampc(double v) {
    return v < -1e6 ? -1e6 : v > 1e6 ? 1e6 : v;
}
static double map_x(const Frame *fr, double v) {
    return clampc(fr->px + (v - fr->x.lo) / (fr->x.hi - fr->x.lo) * fr->pw);
}
static double map_y(const Frame *fr, const Axis *a, double v) {
    return clampc(fr->py + fr->ph - (v - a->lo) / (a->hi - a->lo) * fr->ph);
}

static double xval(const PlotSeries *s, int i) {
    return s->x ? s->x[i] : (double)i;
}

static const char *legend_text(const PlotSeries *s) {
    return s->label ? s->label : "";
}

static void write_band(FILE *f, const Frame *fr, const PlotSeries *s, const char *colour) {
    const Axis *a = s->right_axis ? &fr->yr : &fr->yl;
    int started = 0;
    for (int i = 0; i < s->n;) {
        if (!(ok(xval(s, i)) && ok(s->lo[i]) && ok(s->hi[i]))) {
            i++;
            continue;
        }
        int j = i;
        while (j < s->n && ok(xval(s, j)) && ok(s->lo[j]) && ok(s->hi[j])) j++;
        if (j - i >= 2) {
            if (!started)
                fprintf(f, "<path class=\"band\" fill=\"%s\" fill-opacity=\"0.18\" d=\"", colour);
            started = 1;
            for (int k = i; k < j; k++)
                fprintf(f, "%s%.2f %.2f", k == i ? "M" : " L", map_x(fr, xval(s, k)),
                        map_y(fr, a, s->hi[k]));
            for (int k = j - 1; k >= i; k--)
                fprintf(f, " L%.2f %.2f", map_x(fr, xval(s, k)), map_y(fr, a, s->lo[k]));
            fputs(" Z", f);
        }
        i = j;
    }
    if (started) fputs("\"/>\n", f);
}

static int pt_ok(const PlotSeries *s, int i) {
    return i >= 0 && i < s->n && ok(xval(s, i)) && ok(s->y[i]);
}

static void write_line(FILE *f, const Frame *fr, const PlotSeries *s, int idx) {
    const Axis *a = s->right_axis ? &fr->yr : &fr->yl;
    const char *colour = COLOURS[idx % N_COLOURS], *dash = DASHES[(idx / N_COLOURS) % N_DASHES];
    int started = 0;
    for (int i = 0; i < s->n; i++) {
        if (!pt_ok(s, i)) continue;
        if (!started) {
            fprintf(f, "<path class=\"line\" stroke=\"%s\"", colour);
            if (dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
            fputs(" d=\"", f);
        }
        int lone = !pt_ok(s, i - 1) && !pt_ok(s, i + 1);
        fprintf(f, "%s%.2f %.2f%s",
                !started          ? "M"
                : pt_ok(s, i - 1) ? " L"
                                  : " M",
                map_x(fr, xval(s, i)), map_y(fr, a, s->y[i]), lone ? " h0" : "");
        started = 1;
    }
    if (started) fputs("\"/>\n", f);
    /* a lone point has no segment to show it (the zero-length "h0" subpath is only a dot as
     * wide as the line), so it gets a marker */
    for (int i = 0; i < s->n; i++)
        if (pt_ok(s, i) && !pt_ok(s, i - 1) && !pt_ok(s, i + 1))
            fprintf(f, "<circle class=\"point\" cx=\"%.2f\" cy=\"%.2f\" r=\"2.6\" fill=\"%s\"/>\n",
                    map_x(fr, xval(s, i)), map_y(fr, a, s->y[i]), colour);
}

/* Legend entries flow left to right and wrap within the plot width. */
typedef struct {
    int rows;
    double row_h;
} LegendLayout;

static double legend_entry_w(const PlotSeries *s) {
    return 24 + 6 + text_w(legend_text(s), FS_LEGEND) +
           (s->right_axis ? text_w(" (right)", FS_LEGEND) : 0) + 18;
}

static LegendLayout legend_layout(const PlotSeries *series, int n, double avail) {
    LegendLayout L = {0, 18};
    double x = 0;
    for (int i = 0; i < n; i++) {
        if (!series[i].label) continue;
        double w = legend_entry_w(&series[i]);
        if (L.rows == 0 || (x > 0 && x + w > avail)) {
            L.rows++;
            x = 0;
        }
        x += w;
    }
    return L;
}

static void write_legend(FILE *f, const PlotSeries *series, int n, double x0, double y0,
                         double avail, double row_h) {
    double x = 0, y = y0;
    int row = 0;
    fprintf(f, "<g class=\"legend\" font-size=\"%d\" fill=\"#333\">\n", FS_LEGEND);
    for (int i = 0; i < n; i++) {
        const PlotSeries *s = &series[i];
        if (!s->label) continue;
        double w = legend_entry_w(s);
        if (row == 0 || (x > 0 && x + w > avail)) {
            if (row > 0) y += row_h;
            row++;
            x = 0;
        }
        double sx = x0 + x, cy = y + row_h / 2;
        const char *colour = COLOURS[i % N_COLOURS];
        const char *dash = DASHES[(i / N_COLOURS) % N_DASHES];
        if (s->lo && s->hi)
            fprintf(f,
                    "<rect x=\"%.2f\" y=\"%.2f\" width=\"24\" height=\"10\" fill=\"%s\" "
                    "fill-opacity=\"0.18\"/>\n",
                    sx, cy - 5, colour);
        fprintf(f,
                "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                "stroke-width=\"2.2\"",
                sx, cy, sx + 24, cy, colour);
        if (dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
        fputs("/>\n", f);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" dominant-baseline=\"central\">", sx + 30, cy);
        put_text(f, s->label);
        if (s->right_axis) fputs("<tspan dx=\"4\" fill=\"#888\">(right)</tspan>", f);
        fputs("</text>\n", f);
        x += w;
    }
    fputs("</g>\n", f);
}

static void data_range(const PlotSeries *series, int n, int right, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int k = 0; k < n; k++) {
        const PlotSeries *s = &series[k];
        if (!!s->right_axis != right) continue;
        for (int i = 0; i < s->n; i++) {
            if (!ok(xval(s, i))) continue;
            if (ok(s->y[i])) *lo = fmin(*lo, s->y[i]), *hi = fmax(*hi, s->y[i]);
            if (s->lo && s->hi && ok(s->lo[i]) && ok(s->hi[i])) {
                *lo = fmin(*lo, fmin(s->lo[i], s->hi[i]));
                *hi = fmax(*hi, fmax(s->lo[i], s->hi[i]));
            }
        }
    }
}

static int y_axis(Axis *a, const char *path, double fmin_, double fmax_, double dlo, double dhi,
                  int target, const char *which) {
    if (fmin_ == fmax_) {
        axis_auto(a, dlo, dhi, target);
        return DR_OK;
    }
    if (!ok(fmin_) || !ok(fmax_) || fmin_ > fmax_)
        return dr_error("%s: %s range [%g, %g] must be finite with min < max", path, which, fmin_,
                        fmax_);
    axis_fixed(a, fmin_, fmax_, target);
    return DR_OK;
}

static double ticks_w(const Axis *a) {
    double w = 0;
    char buf[64];
    for (int i = 0; i < a->nt; i++) {
        fmt_tick(buf, sizeof buf, a->ticks[i], a->step);
        w = fmax(w, text_w(buf, FS_TICK));
    }
    return w;
}

static void write_text(FILE *f, double x, double y, const char *attrs, const char *s) {
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\"%s%s>", x, y, attrs ? " " : "", attrs ? attrs : "");
    put_text(f, s);
    fputs("</text>\n", f);
}

static void write_chart(FILE *f, const PlotSpec *sp, const PlotSeries *series, int n_series,
                        const Frame *fr, int W, int H, int has_right, double legend_y,
                        double legend_row_h) {
    char buf[64];
    double bottom = fr->py + fr->ph, right = fr->px + fr->pw;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"%s\">\n",
            W, H, W, H, PLOT_FONT);
    fprintf(f, "<rect class=\"background\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    fprintf(f,
            "<rect class=\"plot-area\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
            "fill=\"#ffffff\"/>\n",
            fr->px, fr->py, fr->pw, fr->ph);
    /* the clip reaches a little past the frame, so a line lying on an axis (accuracy 0, a
     * fixed range's limit) is drawn whole rather than cut along its middle */
    fprintf(f,
            "<defs><clipPath id=\"plot-clip\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
            "height=\"%.2f\"/></clipPath></defs>\n",
            fr->px - CLIP_PAD, fr->py - CLIP_PAD, fr->pw + 2 * CLIP_PAD, fr->ph + 2 * CLIP_PAD);

    fputs("<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n", f);
    for (int i = 0; i < fr->yl.nt; i++) {
        double y = map_y(fr, &fr->yl, fr->yl.ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr->px, y, right,
                y);
    }
    for (int i = 0; i < fr->x.nt; i++) {
        double x = map_x(fr, fr->x.ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, fr->py, x,
                bottom);
    }
    fputs("</g>\n", f);

    /* the frame goes under the data, which may lie on it */
    fputs("<g class=\"axes\" stroke=\"#555\" stroke-width=\"1\">\n", f);
    fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr->px, fr->py, fr->px,
            bottom);
    fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr->px, bottom, right,
            bottom);
    if (has_right)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", right, fr->py,
                right, bottom);
    for (int i = 0; i < fr->yl.nt; i++) {
        double y = map_y(fr, &fr->yl, fr->yl.ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr->px - 5, y,
                fr->px, y);
    }
    for (int i = 0; has_right && i < fr->yr.nt; i++) {
        double y = map_y(fr, &fr->yr, fr->yr.ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", right, y, right + 5,
                y);
    }
    for (int i = 0; i < fr->x.nt; i++) {
        double x = map_x(fr, fr->x.ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, bottom, x,
                bottom + 5);
    }
    fputs("</g>\n", f);

    /* bands under every line, so no band hides another series' line */
    fputs("<g class=\"bands\" clip-path=\"url(#plot-clip)\">\n", f);
    for (int k = 0; k < n_series; k++)
        if (series[k].lo && series[k].hi) write_band(f, fr, &series[k], COLOURS[k % N_COLOURS]);
    fputs("</g>\n", f);
    fputs("<g class=\"lines\" clip-path=\"url(#plot-clip)\" fill=\"none\" stroke-width=\"1.8\" "
          "stroke-linejoin=\"round\" stroke-linecap=\"round\">\n",
          f);
    for (int k = 0; k < n_series; k++) write_line(f, fr, &series[k], k);
    fputs("</g>\n", f);

    /* one group per axis, so a reader (or a test) can tell the tick labels apart */
    fprintf(f, "<g class=\"ticks-y\" font-size=\"%d\" fill=\"#444\" text-anchor=\"end\">\n",
            FS_TICK);
    for (int i = 0; i < fr->yl.nt; i++) {
        fmt_tick(buf, sizeof buf, fr->yl.ticks[i], fr->yl.step);
        write_text(f, fr->px - 8, map_y(fr, &fr->yl, fr->yl.ticks[i]),
                   "dominant-baseline=\"central\"", buf);
    }
    fputs("</g>\n", f);
    if (has_right) {
        fprintf(f, "<g class=\"ticks-y-right\" font-size=\"%d\" fill=\"#444\">\n", FS_TICK);
        for (int i = 0; i < fr->yr.nt; i++) {
            fmt_tick(buf, sizeof buf, fr->yr.ticks[i], fr->yr.step);
            write_text(f, right + 8, map_y(fr, &fr->yr, fr->yr.ticks[i]),
                       "dominant-baseline=\"central\"", buf);
        }
        fputs("</g>\n", f);
    }
    fprintf(f, "<g class=\"ticks-x\" font-size=\"%d\" fill=\"#444\" text-anchor=\"middle\">\n",
            FS_TICK);
    for (int i = 0; i < fr->x.nt; i++) {
        fmt_tick(buf, sizeof buf, fr->x.ticks[i], fr->x.step);
        write_text(f, map_x(fr, fr->x.ticks[i]), bottom + 8 + FS_TICK, NULL, buf);
    }
    fputs("</g>\n", f);

    fprintf(f, "<g class=\"labels\" font-size=\"%d\" fill=\"#222\">\n", FS_LABEL);
    if (sp->xlabel) write_text(f, fr->px + fr->pw / 2, H - 8, "text-anchor=\"middle\"", sp->xlabel);
    /* rotated -90 the glyphs rise to the left of the baseline, rotated +90 to the right */
    if (sp->ylabel) {
        double x = 6 + FS_LABEL, y = fr->py + fr->ph / 2;
        fprintf(f, "<text transform=\"translate(%.2f %.2f) rotate(-90)\" text-anchor=\"middle\">",
                x, y);
        put_text(f, sp->ylabel);
        fputs("</text>\n", f);
    }
    if (has_right && sp->ylabel_right) {
        double x = W - 6 - FS_LABEL, y = fr->py + fr->ph / 2;
        fprintf(f, "<text transform=\"translate(%.2f %.2f) rotate(90)\" text-anchor=\"middle\">", x,
                y);
        put_text(f, sp->ylabel_right);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);
    if (sp->title) {
        char attrs[64];
        snprintf(attrs, sizeof attrs, "text-anchor=\"middle\" font-size=\"%d\" font-weight=\"600\"",
                 FS_TITLE);
        fprintf(f, "<g class=\"title\" fill=\"#111\">\n");
        write_text(f, fr->px + fr->pw / 2, 10 + FS_TITLE, attrs, sp->title);
        fputs("</g>\n", f);
    }
    write_legend(f, series, n_series, fr->px, legend_y, fr->pw, legend_row_h);
    fputs("</svg>\n", f);
}

int plot_svg(const char *path, const PlotSpec *spec, const PlotSeries *series, int n_series) {
    if (!path || !*path) return dr_error("(empty path): expected a file name for the chart");
    if (n_series < 0 || (n_series > 0 && !series))
        return dr_error("%s: expected n_series >= 0 and a series array", path);
    PlotSpec sp = {0};
    if (spec) sp = *spec;
    int has_right = 0, any_label = 0;
    for (int k = 0; k < n_series; k++) {
        const PlotSeries *s = &series[k];
        if (s->n < 0 || (s->n > 0 && !s->y))
            return dr_error("%s: series %d: expected n >= 0 and y values", path, k);
        if (!s->lo != !s->hi)
            return dr_error("%s: series %d: a band needs both lo and hi (or neither)", path, k);
        has_right |= s->right_axis != 0;
        any_label |= s->label != NULL;
    }
    int W = sp.width > 0 ? sp.width : 800, H = sp.height > 0 ? sp.height : 450;
    if (W < 240) W = 240;
    if (H < 180) H = 180;

    Frame fr;
    memset(&fr, 0, sizeof fr);
    /* y tick density follows the height alone, so the margins (which depend on the widest
     * tick label) can be computed before the plot area is known */
    int ytarget = (H - 100) / 50 < 3 ? 3 : (H - 100) / 50;
    double lo, hi;
    data_range(series, n_series, 0, &lo, &hi);
    if (y_axis(&fr.yl, path, sp.ymin, sp.ymax, lo, hi, ytarget, "y") != DR_OK) return DR_ERR;
    if (has_right) {
        data_range(series, n_series, 1, &lo, &hi);
        if (y_axis(&fr.yr, path, sp.ymin_right, sp.ymax_right, lo, hi, ytarget, "right y") != DR_OK)
            return DR_ERR;
    }

    double left = 10 + (sp.ylabel ? FS_LABEL + 8 : 0) + ticks_w(&fr.yl) + 13;
    double right =
        has_right ? 10 + (sp.ylabel_right ? FS_LABEL + 8 : 0) + ticks_w(&fr.yr) + 13 : 24;
    fr.px = left;
    fr.pw = W - left - right;
    if (fr.pw < 40) fr.pw = 40;

    double xlo = INFINITY, xhi = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < series[k].n; i++) {
            double x = xval(&series[k], i);
            int band = series[k].lo && ok(series[k].lo[i]) && ok(series[k].hi[i]);
            if (ok(x) && (ok(series[k].y[i]) || band)) xlo = fmin(xlo, x), xhi = fmax(xhi, x);
        }
    int xtarget = (int)(fr.pw / 90) < 3 ? 3 : (int)(fr.pw / 90);
    axis_auto(&fr.x, xlo, xhi, xtarget);

    double top = 10 + (sp.title ? FS_TITLE + 10 : 0);
    double legend_y = top;
    LegendLayout leg = {0, 18};
    if (any_label) {
        leg = legend_layout(series, n_series, fr.pw);
        top += leg.rows * leg.row_h + 6;
    }
    top += 8;
    double bottom = 5 + 8 + FS_TICK + 6 + (sp.xlabel ? FS_LABEL + 8 : 0);
    fr.py = top;
    fr.ph = H - top - bottom;
    if (fr.ph < 40) fr.ph = 40;

    AtomicFile af;
    if (atomic_open(&af, path) != DR_OK) return DR_ERR;
    write_chart(af.fp, &sp, series, n_series, &fr, W, H, has_right, legend_y, leg.row_h);
    return atomic_commit(&af);
}
