/* tune_svg.c - the frontier plot: a hand-written, self-contained SVG of
 * accuracy (y) against $/query (x, log scale). The frontier is a step line
 * (a budget buys the best chain at or under it), each single model a
 * labelled dot, each chosen chain a labelled ring. Hovering a point shows
 * its chain.
 */
#include "tune.h"
#include "caps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SVG_W 960
#define SVG_H 600
#define SVG_L 80  /* plot area margins */
#define SVG_R 190 /* room for model labels */
#define SVG_T 50
#define SVG_B 70

struct axes {
    double x0, x1; /* log10 $/query */
    double y0, y1; /* accuracy */
};

static double px(const struct axes *a, double cost)
{
    double lx = log10(cost > 0 ? cost : 1e-12);

    return SVG_L + (lx - a->x0) / (a->x1 - a->x0) * (SVG_W - SVG_L - SVG_R);
}

static double py(const struct axes *a, double acc)
{
    return SVG_H - SVG_B - (acc - a->y0) / (a->y1 - a->y0) * (SVG_H - SVG_T - SVG_B);
}

/* Text with XML's five special characters escaped. */
static void xml_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&apos;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

static const char *short_name(const char *s)
{
    const char *slash = strrchr(s, '/');

    return slash ? slash + 1 : s;
}

void tune_svg(FILE *out, const struct tune_data *d, const struct tune_frontier *f,
              const struct tune_plot_model *models, size_t nmodels,
              const struct tune_plot_mark *marks, size_t nmarks, const char *title)
{
    struct axes a;
    double cmin = INFINITY, cmax = 0, amin = 1, amax = 0;
    double nq = f->nq ? (double)f->nq : 1;
    double ystep;

    for (size_t i = 0; i < f->n; i++) {
        double c = f->pt[i].cost / nq, acc = (double)f->pt[i].correct / nq;

        if (c > 0 && c < cmin)
            cmin = c;
        cmax = c > cmax ? c : cmax;
        amin = acc < amin ? acc : amin;
        amax = acc > amax ? acc : amax;
    }
    for (size_t i = 0; i < nmodels; i++) {
        if (models[i].cost > 0 && models[i].cost < cmin)
            cmin = models[i].cost;
        cmax = models[i].cost > cmax ? models[i].cost : cmax;
        amin = models[i].acc < amin ? models[i].acc : amin;
        amax = models[i].acc > amax ? models[i].acc : amax;
    }
    if (!isfinite(cmin) || cmax <= 0) {
        cmin = 1e-5;
        cmax = 1e-2;
    }
    a.x0 = log10(cmin) - 0.12;
    a.x1 = log10(cmax) + 0.12;
    if (a.x1 - a.x0 < 0.5) {
        a.x0 -= 0.25;
        a.x1 += 0.25;
    }
    ystep = amax - amin > 0.3 ? 0.1 : amax - amin > 0.12 ? 0.05 : 0.02;
    a.y0 = floor((amin - 0.01) / ystep) * ystep;
    a.y1 = ceil((amax + 0.01) / ystep) * ystep;
    if (a.y0 < 0)
        a.y0 = 0;
    if (a.y1 > 1)
        a.y1 = 1;
    if (a.y1 - a.y0 < ystep)
        a.y1 = a.y0 + ystep;

    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(out, "<text x=\"%d\" y=\"28\" font-size=\"16\" font-weight=\"bold\">", SVG_L);
    xml_text(out, title);
    fputs("</text>\n", out);

    /* Grid and ticks: 1, 2, 5 per decade on x, where they fall in range. */
    fputs("<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n", out);
    for (int e = (int)floor(a.x0); e <= (int)ceil(a.x1); e++)
        for (int k = 1; k <= 5; k += (k == 1 ? 1 : 3)) {
            double lx = log10(k * pow(10, e));

            if (lx < a.x0 || lx > a.x1)
                continue;
            fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n",
                    px(&a, k * pow(10, e)), SVG_T, px(&a, k * pow(10, e)), SVG_H - SVG_B);
        }
    for (double y = a.y0; y <= a.y1 + 1e-9; y += ystep)
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", SVG_L, py(&a, y),
                SVG_W - SVG_R, py(&a, y));
    fputs("</g>\n<g fill=\"#444\">\n", out);
    for (int e = (int)floor(a.x0); e <= (int)ceil(a.x1); e++)
        for (int k = 1; k <= 5; k += (k == 1 ? 1 : 3)) {
            double lx = log10(k * pow(10, e));

            if (lx < a.x0 || lx > a.x1)
                continue;
            fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">$%g</text>\n",
                    px(&a, k * pow(10, e)), SVG_H - SVG_B + 18, k * pow(10, e));
        }
    for (double y = a.y0; y <= a.y1 + 1e-9; y += ystep)
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", SVG_L - 8,
                py(&a, y) + 4, y);
    fprintf(out,
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">$ per query (log scale)</text>\n"
            "<text transform=\"translate(20 %d) rotate(-90)\" text-anchor=\"middle\">"
            "accuracy</text>\n</g>\n",
            (SVG_L + SVG_W - SVG_R) / 2, SVG_H - 20, (SVG_T + SVG_H - SVG_B) / 2);
    fprintf(out,
            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#888\"/>\n",
            SVG_L, SVG_T, SVG_W - SVG_L - SVG_R, SVG_H - SVG_T - SVG_B);

    /* The frontier as a step line: from each point, flat until the next. */
    if (f->n > 0) {
        fputs("<path fill=\"none\" stroke=\"#1f6fb4\" stroke-width=\"2\" d=\"", out);
        for (size_t i = 0; i < f->n; i++) {
            double x = px(&a, f->pt[i].cost / nq), y = py(&a, (double)f->pt[i].correct / nq);

            if (i == 0)
                fprintf(out, "M%.1f %.1f", x, y);
            else
                fprintf(out, " H%.1f V%.1f", x, y);
        }
        fprintf(out, " H%d\"/>\n", SVG_W - SVG_R);
        fputs("<g fill=\"#1f6fb4\">\n", out);
        for (size_t i = 0; i < f->n; i++) {
            struct buf b;

            buf_init(&b, TUNE_CHAIN_MAX);
            /* A chain too long for its tooltip gets an empty one. */
            if (tune_chain_format(d, &f->pt[i].chain, &b) < 0)
                buf_reset(&b);
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"><title>",
                    px(&a, f->pt[i].cost / nq), py(&a, (double)f->pt[i].correct / nq));
            fprintf(out, "%.4f @ $%.3g/query: ", (double)f->pt[i].correct / nq, f->pt[i].cost / nq);
            xml_text(out, b.data ? b.data : "");
            fputs("</title></circle>\n", out);
            buf_free(&b);
        }
        fputs("</g>\n", out);
    }

    /* Single models, labels nudged down until they do not overlap one
     * already placed (about 6.5 px per character at 12 px). */
    fputs("<g>\n", out);
    {
        double *lx = xcalloc(nmodels ? nmodels : 1, sizeof(double));
        double *ly = xcalloc(nmodels ? nmodels : 1, sizeof(double));
        double *lw = xcalloc(nmodels ? nmodels : 1, sizeof(double));

        for (size_t i = 0; i < nmodels; i++) {
            double x = px(&a, models[i].cost), y = py(&a, models[i].acc);
            const char *label = short_name(models[i].label);
            int moved = 1;

            lx[i] = x + 7;
            ly[i] = y + 4;
            lw[i] = 6.5 * (double)strlen(label);
            for (int tries = 0; moved && tries < 8; tries++) {
                moved = 0;
                for (size_t k = 0; k < i; k++) {
                    if (lx[i] < lx[k] + lw[k] && lx[k] < lx[i] + lw[i] &&
                        fabs(ly[i] - ly[k]) < 12) {
                        ly[i] = ly[k] + 12;
                        moved = 1;
                    }
                }
            }
            fprintf(out,
                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"#e07b00\" "
                    "stroke=\"white\"/>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"#7a4300\">",
                    x, y, lx[i], ly[i]);
            xml_text(out, label);
            fputs("</text>\n", out);
        }
        free(lx);
        free(ly);
        free(lw);
    }
    fputs("</g>\n", out);

    /* The chosen points, each ringed; labels alternate above and below so
     * that neighbours do not overwrite each other. */
    for (size_t i = 0; i < nmarks; i++) {
        double x = px(&a, marks[i].cost), y = py(&a, marks[i].acc);
        double ty = i % 2 ? y + 22 : y - 12;

        fprintf(out,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8\" fill=\"none\" stroke=\"#c0162b\" "
                "stroke-width=\"2\"/>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"#c0162b\" "
                "text-anchor=\"end\">",
                x, y, x - 10, ty);
        xml_text(out, marks[i].label);
        fputs("</text>\n", out);
    }

    /* Legend. */
    fprintf(out,
            "<g transform=\"translate(%d %d)\">\n"
            "<line x1=\"0\" y1=\"0\" x2=\"24\" y2=\"0\" stroke=\"#1f6fb4\" stroke-width=\"2\"/>"
            "<text x=\"30\" y=\"4\">frontier (best chain per budget)</text>\n"
            "<circle cx=\"12\" cy=\"20\" r=\"4.5\" fill=\"#e07b00\"/>"
            "<text x=\"30\" y=\"24\">single model</text>\n"
            "<circle cx=\"12\" cy=\"40\" r=\"6\" fill=\"none\" stroke=\"#c0162b\" "
            "stroke-width=\"2\"/><text x=\"30\" y=\"44\">chosen route</text>\n</g>\n",
            SVG_L + 12, SVG_T + 16);
    fputs("</svg>\n", out);
}
