/* libFuzzer: jscan against jansson. Whatever json_loadb accepts, jscan
 * accepts, and reads into the same tree; whatever it refuses, jscan refuses.
 * jscan_skip must agree too. One exception: jansson skips a NUL byte that
 * follows a number or a literal (a quirk of its stream buffer: "[9\0]" reads
 * as [9]); jscan refuses every NUL outside a string, as RFC 8259 does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/jscan_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *want = json_loadb(text, size, JSON_DECODE_ANY, NULL);
    json_t *got = jscan_tree(text, size);
    struct jscan js;
    struct jtok t;
    int nul = memchr(text, '\0', size) != NULL, skipped;

    if (want == NULL && got != NULL)
        abort();
    if (want != NULL && got == NULL && !nul)
        abort();
    if (want && got && !json_equal(want, got))
        abort();
    jscan_init(&js, text, size);
    skipped = jscan_value(&js, &t) == 0 && jscan_skip(&js, &t) == 0 && jscan_end(&js) == 0;
    if (skipped != (got != NULL))
        abort();
    json_decref(want);
    json_decref(got);
    return 0;
}
