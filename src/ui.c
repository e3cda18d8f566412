/* ui.c - the dashboard's assets by path; see ui.h. */
#include "ui.h"

#include <string.h>

const struct ui_asset *ui_find(const char *path)
{
    if (strcmp(path, "/ui/") == 0)
        path = "/ui";
    for (const struct ui_asset *a = ui_assets; a->path; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}
