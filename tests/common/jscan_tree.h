/* jscan_tree.h - build a jansson tree from jscan's tokens, for tests: a
 * document jscan reads must give the same tree as json_loadb's. */
#ifndef SLUICE_TEST_JSCAN_TREE_H
#define SLUICE_TEST_JSCAN_TREE_H

#include <jansson.h>
#include <stdlib.h>

#include "../../src/jscan.h"

/* The value whose first token is t, or NULL if jscan fails on it. */
static json_t *jscan_tree_value(struct jscan *js, const struct jtok *t)
{
    struct jtok k, v;
    struct buf s;
    json_t *out = NULL, *item;
    long long ll;
    double d;
    int r = 0;

    switch (t->type) {
    case JT_OBJECT:
        out = json_object();
        while ((r = jscan_member(js, &k)) == 1) {
            buf_init(&s, k.len);
            if (jtok_string(&k, &s) < 0 || jscan_value(js, &v) < 0 ||
                (item = jscan_tree_value(js, &v)) == NULL) {
                buf_free(&s);
                json_decref(out);
                return NULL;
            }
            json_object_setn_new(out, s.data ? s.data : "", s.len, item);
            buf_free(&s);
        }
        break;
    case JT_ARRAY:
        out = json_array();
        while ((r = jscan_elem(js)) == 1) {
            if (jscan_value(js, &v) < 0 || (item = jscan_tree_value(js, &v)) == NULL) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, item);
        }
        break;
    case JT_STRING:
        buf_init(&s, t->len);
        r = jtok_string(t, &s);
        out = r == 0 ? json_stringn(s.data ? s.data : "", s.len) : NULL;
        buf_free(&s);
        return out;
    case JT_NUMBER:
        if (jtok_integer(t, &ll))
            return json_integer(ll);
        return jtok_number(t, &d) ? json_real(d) : NULL;
    case JT_TRUE:
        return json_true();
    case JT_FALSE:
        return json_false();
    case JT_NULL:
        return json_null();
    }
    if (r < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The whole text as a tree, or NULL where jscan refuses it. */
static json_t *jscan_tree(const char *text, size_t len)
{
    struct jscan js;
    struct jtok t;
    json_t *j;

    jscan_init(&js, text, len);
    if (jscan_value(&js, &t) < 0)
        return NULL;
    j = jscan_tree_value(&js, &t);
    if (j != NULL && jscan_end(&js) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

#endif
