/* ui.h - the dashboard's assets (src/ui: the page, its script and style,
 * and the vendored uPlot), embedded in the binary at build time by
 * src/ui/embed.sh, so a user runs no build step and ships no files.
 */
#ifndef SLUICE_UI_H
#define SLUICE_UI_H

#include <stddef.h>

struct ui_asset {
    const char *path; /* "/ui" for the page, "/ui/<file>" for the rest */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

/* Generated: every asset, then one with path NULL. */
extern const struct ui_asset ui_assets[];

/* The asset served at path ("/ui/" is the page too), or NULL. */
const struct ui_asset *ui_find(const char *path);

#endif
