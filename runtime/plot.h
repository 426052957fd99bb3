/* A small dependency-free SVG line-chart writer for run reports: several series on shared
 * x, "nice" 1-2-5 ticks, a legend, an optional translucent band per series (mean ± spread),
 * and an optional second y axis on the right for series on a different scale. */
#pragma once

typedef struct {
    const char *label; /* legend text (escaped on output); NULL shows nothing */
    const double *x;   /* (n) or NULL for 0, 1, ..., n-1 */
    const double *y;   /* (n); NaN or ±inf points are skipped and break the line */
    int n;
    const double *lo; /* (n) lower edge of a band, or NULL for no band */
    const double *hi; /* (n) upper edge of a band, or NULL for no band */
    int right_axis;   /* 1: plotted against the right y axis */
} PlotSeries;

typedef struct {
    const char *title, *xlabel, *ylabel, *ylabel_right; /* each may be NULL */
    double ymin, ymax;             /* left axis range; ymin == ymax: from the data */
    double ymin_right, ymax_right; /* right axis range; equal: from the data */
    int width, height;             /* SVG size in px; 0: 800 x 450 */
} PlotSpec;

/* Writes the chart to PATH atomically (runtime/fileio.h). Each series with at least one
 * finite point becomes one <path class="line"> element, in series order; a point with no
 * finite neighbour also gets a <circle class="point"> marker. Each band with two
 * consecutive finite points becomes one <path class="band">.
 * DR_OK, or DR_ERR with "<path>: <what was expected>" for bad arguments or a failed write. */
int plot_svg(const char *path, const PlotSpec *spec, const PlotSeries *series, int n_series);
