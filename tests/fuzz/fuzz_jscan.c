/* libFuzzer: jscan against jansson, for every flag the gateway uses. What
 * json_loadb refuses, jscan refuses; what it accepts, jscan reads into the
 * same tree, and jscan_skip walks. One exception: jansson skips a NUL byte
 * that follows a number or a literal (a quirk of its stream buffer: "[9\\0]"
 * reads as [9]); jscan refuses every NUL outside a string, as RFC 8259 does,
 * and jscan_loadb then hands the text to jansson, so it still agrees. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/jscan.h"

static void same(const char *text, size_t size, size_t flags, int nul)
{
    json_t *want = json_loadb(text, size, flags, NULL);
    json_t *got = jscan_build(text, size, flags);
    json_t *loaded = jscan_loadb(text, size, flags, NULL);

    if (want == NULL && got != NULL)
        abort();
    if (want != NULL && got == NULL && !nul)
        abort();
    if (want && got && !json_equal(want, got))
        abort();
    if ((want == NULL) != (loaded == NULL) || (want && !json_equal(want, loaded)))
        abort();
    json_decref(want);
    json_decref(got);
    json_decref(loaded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int nul = memchr(text, '\0', size) != NULL, skipped, valid;
    struct jscan js;
    struct jtok t;
    json_t *any;

    same(text, size, JSON_DECODE_ANY, nul);
    same(text, size, 0, nul);
    same(text, size, JSON_REJECT_DUPLICATES, nul);
    any = jscan_build(text, size, JSON_DECODE_ANY);
    valid = any != NULL;
    json_decref(any);
    jscan_init(&js, text, size);
    skipped = jscan_value(&js, &t) == 0 && jscan_skip(&js, &t) == 0 && jscan_end(&js) == 0;
    if (skipped != valid)
        abort();
    return 0;
}
