/* mock_anthropic.c - sluice-mock's Anthropic mode; see mock_anthropic.h.
 *
 * The wire format follows Anthropic's Messages API (the official
 * @anthropic-ai/sdk types, and a test drives the SDK against this mock):
 * a Message object {id, type, role, model, content, stop_reason,
 * stop_sequence, usage}; streams as named SSE events; errors as
 * {"type":"error","error":{"type","message"}} (mock_reply.c renders those).
 */
#include "mock_anthropic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANTH_MAX_EVENTS 200000 /* content deltas of one stream */
#define ANTH_MAX_CHUNKS 10000
#define ANTH_MAX_PROMPT (16u << 20) /* text of one message, or of the system prompt */

/* A 400 in Anthropic's shape: invalid_request_error with a message alone. */
#define anth_fail(e, ...) mock_fail((e), 400, NULL, NULL, __VA_ARGS__)

/* ---- checking a request ---- */

/* The members MessageCreateParams has (SDK 1.x), and the mock's own. */
static const char *const known_keys[] = {
    "model",          "messages",        "max_tokens",    "system",
    "stop_sequences", "stream",          "temperature",   "top_p",
    "top_k",          "tools",           "tool_choice",   "metadata",
    "thinking",       "service_tier",    "container",     "mcp_servers",
    "cache_control",  "diagnostics",     "inference_geo", "output_config",
    "speed",          "user_profile_id", "workspace_id",  "context_management",
    "mock",
};

static int is_known(const char *k)
{
    for (size_t i = 0; i < ARRAY_LEN(known_keys); i++)
        if (strcmp(k, known_keys[i]) == 0)
            return 1;
    return 0;
}

static const char *type_of(const json_t *block)
{
    return json_string_value(json_object_get(block, "type"));
}

/* A text block: {"type":"text","text": non-empty}. */
static int check_text(const json_t *b, const char *where, struct mock_err *err)
{
    json_t *t = json_object_get(b, "text");

    if (!json_is_string(t))
        return anth_fail(err, "%s.text: Field required", where);
    if (json_string_length(t) == 0)
        return anth_fail(err, "messages: text content blocks must be non-empty");
    return 0;
}

static int check_image(const json_t *b, const char *where, struct mock_err *err)
{
    json_t *src = json_object_get(b, "source");
    const char *st = type_of(src);

    if (st && strcmp(st, "base64") == 0 && json_is_string(json_object_get(src, "media_type")) &&
        json_is_string(json_object_get(src, "data")))
        return 0;
    if (st && strcmp(st, "url") == 0 && json_is_string(json_object_get(src, "url")))
        return 0;
    return anth_fail(err, "%s.source: Input should be a valid base64 or url image source", where);
}

/* tool_result content: a string, or text and image blocks. */
static int check_result_content(const json_t *c, const char *where, struct mock_err *err)
{
    const json_t *b;
    size_t i;

    if (c == NULL || json_is_string(c))
        return 0;
    if (!json_is_array(c))
        return anth_fail(err, "%s.content: Input should be a valid list", where);
    json_array_foreach ((json_t *)c, i, b) {
        const char *t = type_of(b);
        char w[96];

        snprintf(w, sizeof(w), "%s.content.%zu", where, i);
        if (t && strcmp(t, "text") == 0) {
            if (check_text(b, w, err) < 0)
                return -1;
        } else if (t && strcmp(t, "image") == 0) {
            if (check_image(b, w, err) < 0)
                return -1;
        } else {
            return anth_fail(err,
                             "%s: Input tag '%.40s' found using 'type' does not match any of "
                             "the expected tags: 'text', 'image'",
                             w, t ? t : "");
        }
    }
    return 0;
}

/* The ids of an assistant turn's tool_use blocks. */
static json_t *tool_use_ids(const json_t *msg)
{
    json_t *ids = json_array(), *b;
    size_t i;

    json_array_foreach (json_object_get(msg, "content"), i, b) {
        const char *t = type_of(b);

        if (t && strcmp(t, "tool_use") == 0)
            json_array_append(ids, json_object_get(b, "id"));
    }
    return ids;
}

static int id_in(const json_t *ids, const json_t *id)
{
    const json_t *v;
    size_t i;

    json_array_foreach ((json_t *)ids, i, v) {
        if (json_equal(v, id))
            return 1;
    }
    return 0;
}

/* One message's blocks. prev_ids: the tool_use ids of the assistant turn
 * before a user turn (else NULL): each must get exactly one tool_result
 * here, and no other tool_result may appear. */
static int check_blocks(const json_t *content, size_t mi, int user, const json_t *prev_ids,
                        struct mock_err *err)
{
    json_t *seen = json_array(), *b;
    size_t i;
    int rc = 0;

    json_array_foreach ((json_t *)content, i, b) {
        const char *t = type_of(b);
        char w[64];

        snprintf(w, sizeof(w), "messages.%zu.content.%zu", mi, i);
        if (!json_is_object(b) || t == NULL) {
            rc = anth_fail(err, "%s: Input should be a valid dictionary or object", w);
        } else if (strcmp(t, "text") == 0) {
            rc = check_text(b, w, err);
        } else if (strcmp(t, "image") == 0) {
            rc = check_image(b, w, err);
        } else if (strcmp(t, "tool_use") == 0) {
            if (user)
                rc = anth_fail(err, "%s: tool_use blocks may only appear in assistant turns", w);
            else if (!json_is_string(json_object_get(b, "id")) ||
                     !json_is_string(json_object_get(b, "name")) ||
                     !json_is_object(json_object_get(b, "input")))
                rc = anth_fail(err,
                               "%s: a tool_use block needs a string id, a string name and "
                               "an object input",
                               w);
        } else if (strcmp(t, "tool_result") == 0) {
            json_t *id = json_object_get(b, "tool_use_id");

            if (!user)
                rc = anth_fail(err, "%s: tool_result blocks may only appear in user turns", w);
            else if (!json_is_string(id))
                rc = anth_fail(err, "%s.tool_use_id: Field required", w);
            else if (prev_ids == NULL || !id_in(prev_ids, id))
                rc = anth_fail(err,
                               "messages.%zu.content.%zu: unexpected `tool_use_id` found in "
                               "`tool_result` blocks: %.64s. Each `tool_result` block must have "
                               "a corresponding `tool_use` block in the previous message.",
                               mi, i, json_string_value(id));
            else if (id_in(seen, id))
                rc = anth_fail(err,
                               "messages.%zu.content.%zu: each tool_use must have a single "
                               "result. Found multiple `tool_result` blocks with id: %.64s",
                               mi, i, json_string_value(id));
            else
                rc = check_result_content(json_object_get(b, "content"), w, err);
            if (rc == 0)
                json_array_append(seen, id);
        } else if (strcmp(t, "document") != 0 && strcmp(t, "thinking") != 0 &&
                   strcmp(t, "redacted_thinking") != 0 && strcmp(t, "search_result") != 0) {
            rc = anth_fail(err,
                           "%s: Input tag '%.40s' found using 'type' does not match any of "
                           "the expected tags",
                           w, t);
        }
        if (rc < 0)
            break;
    }
    if (rc == 0 && prev_ids) {
        json_array_foreach (prev_ids, i, b) {
            if (!id_in(seen, b)) {
                rc = anth_fail(err,
                               "messages.%zu: `tool_use` ids were found without `tool_result` "
                               "blocks immediately after: %.64s. Each `tool_use` block must have "
                               "a corresponding `tool_result` block in the next message.",
                               mi, json_string_value(b));
                break;
            }
        }
    }
    json_decref(seen);
    return rc;
}

static int mock_anth_check_messages(const json_t *msgs, struct mock_err *err)
{
    json_t *prev_ids = NULL, *m;
    size_t i, n = json_array_size(msgs);
    int rc = 0;

    if (!json_is_array(msgs))
        return anth_fail(err, "messages: Field required");
    if (n == 0)
        return anth_fail(err, "messages: at least one message is required");
    json_array_foreach ((json_t *)msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        int user = role && strcmp(role, "user") == 0;

        if (!json_is_object(m) || role == NULL || (!user && strcmp(role, "assistant") != 0)) {
            rc = anth_fail(err, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
        } else if (json_is_string(content)) {
            if (json_string_length(content) == 0 && !(i + 1 == n && !user))
                rc = anth_fail(err,
                               "messages.%zu: all messages must have non-empty content "
                               "except for the optional final assistant message",
                               i);
            else if (user && prev_ids) {
                json_t *none = json_array(); /* a string answers no tool_use */

                rc = check_blocks(none, i, 1, prev_ids, err);
                json_decref(none);
            }
        } else if (json_is_array(content)) {
            if (json_array_size(content) == 0 && !(i + 1 == n && !user))
                rc = anth_fail(err,
                               "messages.%zu: all messages must have non-empty content "
                               "except for the optional final assistant message",
                               i);
            else
                rc = check_blocks(content, i, user, user ? prev_ids : NULL, err);
        } else {
            rc = anth_fail(err, "messages.%zu.content: Input should be a valid string or list", i);
        }
        json_decref(prev_ids);
        prev_ids = NULL;
        if (rc < 0)
            break;
        if (!user) {
            prev_ids = tool_use_ids(m);
            if (json_array_size(prev_ids) == 0) {
                json_decref(prev_ids);
                prev_ids = NULL;
            }
        }
    }
    json_decref(prev_ids);
    return rc;
}

static int check_tools(const json_t *req, struct mock_err *err)
{
    json_t *tools = json_object_get(req, "tools"), *t, *tc = json_object_get(req, "tool_choice");
    const char *tct = type_of(tc);
    size_t i;

    if (tools && !json_is_array(tools))
        return anth_fail(err, "tools: Input should be a valid list");
    json_array_foreach (tools, i, t) {
        const char *type = type_of(t);
        json_t *schema = json_object_get(t, "input_schema");

        if (type && strcmp(type, "custom") != 0)
            continue; /* a server tool: not the mock's business */
        if (!json_is_string(json_object_get(t, "name")))
            return anth_fail(err, "tools.%zu.name: Field required", i);
        if (!json_is_object(schema))
            return anth_fail(err, "tools.%zu.input_schema: Field required", i);
        if (!json_is_string(json_object_get(schema, "type")) ||
            strcmp(type_of(schema), "object") != 0)
            return anth_fail(err, "tools.%zu.input_schema.type: Input should be 'object'", i);
    }
    if (tc == NULL)
        return 0;
    if (tct == NULL || (strcmp(tct, "auto") != 0 && strcmp(tct, "any") != 0 &&
                        strcmp(tct, "tool") != 0 && strcmp(tct, "none") != 0))
        return anth_fail(err,
                         "tool_choice: Input tag '%.40s' found using 'type' does not match "
                         "any of the expected tags: 'auto', 'any', 'tool', 'none'",
                         tct ? tct : "");
    if (strcmp(tct, "tool") == 0 && !json_is_string(json_object_get(tc, "name")))
        return anth_fail(err, "tool_choice.name: Field required");
    if (json_array_size(tools) == 0 && strcmp(tct, "none") != 0)
        return anth_fail(err, "tool_choice may only be specified while providing tools.");
    return 0;
}

/* The request as the Messages API checks it. for_count: count_tokens,
 * which takes no max_tokens. */
static int anth_check(const json_t *req, int for_count, struct mock_err *err)
{
    json_t *v, *s;
    const char *k;
    size_t i;

    if (!json_is_object(req))
        return anth_fail(err, "The request body is not valid JSON.");
    json_object_foreach ((json_t *)req, k, v) {
        if (!is_known(k) || (for_count && strcmp(k, "max_tokens") == 0))
            return anth_fail(err, "%.100s: Extra inputs are not permitted", k);
    }
    if (!json_is_string(json_object_get(req, "model")))
        return anth_fail(err, "model: Field required");
    v = json_object_get(req, "max_tokens");
    if (!for_count && !json_is_integer(v))
        return anth_fail(err, "max_tokens: Field required");
    if (!for_count && json_integer_value(v) < 1)
        return anth_fail(err, "max_tokens: Input should be greater than or equal to 1");
    v = json_object_get(req, "temperature");
    if (v && (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1))
        return anth_fail(err, "temperature: Input should be a number from 0 to 1");
    v = json_object_get(req, "stream");
    if (v && !json_is_boolean(v))
        return anth_fail(err, "stream: Input should be a valid boolean");
    v = json_object_get(req, "stop_sequences");
    if (v && !json_is_array(v))
        return anth_fail(err, "stop_sequences: Input should be a valid list");
    json_array_foreach (v, i, s) {
        if (!json_is_string(s))
            return anth_fail(err, "stop_sequences.%zu: Input should be a valid string", i);
    }
    v = json_object_get(req, "system");
    if (v && !json_is_string(v)) {
        if (!json_is_array(v))
            return anth_fail(err, "system: Input should be a valid string or list");
        json_array_foreach (v, i, s) {
            char w[48];

            snprintf(w, sizeof(w), "system.%zu", i);
            if (type_of(s) == NULL || strcmp(type_of(s), "text") != 0)
                return anth_fail(err, "%s.type: Input should be 'text'", w);
            if (check_text(s, w, err) < 0)
                return -1;
        }
    }
    v = json_object_get(req, "metadata");
    if (v && (!json_is_object(v) || json_object_size(v) > 1 ||
              (json_object_size(v) == 1 && !json_is_string(json_object_get(v, "user_id")))))
        return anth_fail(err, "metadata: only a string user_id is allowed");
    if (check_tools(req, err) < 0)
        return -1;
    return mock_anth_check_messages(json_object_get(req, "messages"), err);
}

/* ---- the answer ---- */

/* Append the text a block list (or string) carries, for the chat view.
 * Returns 0, or -1 when b is full. */
static int text_of(const json_t *content, struct buf *b, int *only_results)
{
    const json_t *blk;
    size_t i;

    *only_results = 0;
    if (json_is_string(content))
        return buf_append(b, json_string_value(content), json_string_length(content));
    *only_results = json_array_size(content) > 0;
    json_array_foreach ((json_t *)content, i, blk) {
        const char *t = type_of(blk);
        json_t *text = json_object_get(blk, "text");

        if (t && strcmp(t, "tool_result") == 0) {
            int dummy;

            if (text_of(json_object_get(blk, "content"), b, &dummy) < 0)
                return -1;
            continue;
        }
        *only_results = 0;
        if (json_is_string(text) &&
            ((b->len > 0 && buf_append(b, "\n", 1) < 0) ||
             buf_append(b, json_string_value(text), json_string_length(text)) < 0))
            return -1;
    }
    return 0;
}

/* The same conversation as a chat completions request, for mock_gen_chat:
 * the system prompt first, each turn's text, a user turn of tool results
 * only as a "tool" turn (which ends an agent loop), the tools and the
 * choice among them. NULL when a message is over ANTH_MAX_PROMPT. */
static json_t *chat_view(const json_t *req)
{
    json_t *chat = json_object(), *msgs = json_array(), *m, *t, *tools = json_array();
    json_t *tc = json_object_get(req, "tool_choice");
    const char *tct = type_of(tc);
    struct buf b;
    size_t i;
    int only_results;

    buf_init(&b, ANTH_MAX_PROMPT);
    if (text_of(json_object_get(req, "system"), &b, &only_results) < 0)
        goto too_big;
    if (b.len > 0)
        json_array_append_new(msgs,
                              json_pack("{s:s,s:s%}", "role", "system", "content", b.data, b.len));
    json_array_foreach (json_object_get(req, "messages"), i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));

        buf_reset(&b);
        if (text_of(json_object_get(m, "content"), &b, &only_results) < 0)
            goto too_big;
        json_array_append_new(msgs, json_pack("{s:s,s:s%}", "role", only_results ? "tool" : role,
                                              "content", b.data ? b.data : "", b.len));
    }
    buf_free(&b);
    json_object_set_new(chat, "messages", msgs);
    if (json_object_get(req, "max_tokens"))
        json_object_set(chat, "max_tokens", json_object_get(req, "max_tokens"));
    json_array_foreach (json_object_get(req, "tools"), i, t) {
        if (json_is_string(json_object_get(t, "name")))
            json_array_append_new(tools,
                                  json_pack("{s:s,s:{s:O,s:O?}}", "type", "function", "function",
                                            "name", json_object_get(t, "name"), "parameters",
                                            json_object_get(t, "input_schema")));
    }
    json_object_set_new(chat, "tools", tools);
    if (tct && strcmp(tct, "any") == 0)
        json_object_set_new(chat, "tool_choice", json_string("required"));
    else if (tct && strcmp(tct, "none") == 0)
        json_object_set_new(chat, "tool_choice", json_string("none"));
    else if (tct && strcmp(tct, "tool") == 0)
        json_object_set_new(chat, "tool_choice",
                            json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name",
                                      json_object_get(tc, "name")));
    return chat;
too_big:
    buf_free(&b);
    json_decref(msgs);
    json_decref(tools);
    json_decref(chat);
    return NULL;
}

static void tool_id(struct mock_choice *c, uint64_t h)
{
    snprintf(c->tool_id, sizeof(c->tool_id), "toolu_mock_%012llx",
             (unsigned long long)(h & 0xffffffffffffull));
}

/* mock.tool_calls: n tool_use blocks over the request's client tools (the
 * ones with a name: anth_check does not look into server tools), after the
 * text block when the mock gave content. */
static void many_tools(const json_t *req, const struct mock_gen_opts *o, int n,
                       struct mock_answer *a)
{
    json_t *all = json_object_get(req, "tools"), *tools = json_array(), *tool;
    size_t nt, keep, k, j;
    struct mock_choice *cs;

    json_array_foreach (all, j, tool) {
        if (json_is_string(json_object_get(tool, "name")))
            json_array_append(tools, tool);
    }
    nt = json_array_size(tools);
    if (nt == 0) {
        json_decref(tools);
        return;
    }
    keep = (o->content || o->choices) && a->nchoices > 0 && a->choices[0].tool_name == NULL;
    cs = xcalloc(keep + (size_t)n, sizeof(*cs));
    for (size_t i = 0; i < a->nchoices; i++) {
        if (keep && i == 0) {
            cs[0] = a->choices[0];
            continue;
        }
        free(a->choices[i].text);
        free(a->choices[i].starts);
        free(a->choices[i].tool_name);
    }
    free(a->choices);
    k = keep;
    a->choices = cs;
    for (int i = 0; i < n; i++, k++) {
        const json_t *t = json_array_get(tools, (size_t)i % nt);
        uint64_t h = mock_hash(a->id, strlen(a->id), (uint64_t)i + 1);
        json_t *in = mock_gen_tool_input(json_object_get(t, "input_schema"), h);

        cs[k].text = json_dumps(in, JSON_COMPACT);
        cs[k].len = strlen(cs[k].text);
        json_decref(in);
        cs[k].tool_name = xstrdup(json_string_value(json_object_get(t, "name")));
        tool_id(&cs[k], h);
        cs[k].finish_reason = "tool_calls";
        mock_choice_tokenise(&cs[k], 0);
    }
    a->nchoices = k;
    json_decref(tools);
}

/* Cut a text block at the first stop sequence it contains. */
static void apply_stop(const json_t *req, struct mock_answer *a, struct mock_choice *c)
{
    json_t *seqs = json_object_get(req, "stop_sequences"), *s;
    const char *best = NULL, *hit;
    size_t i, bl = 0;

    json_array_foreach (seqs, i, s) {
        if (json_string_length(s) == 0)
            continue;
        hit = memmem(c->text, c->len, json_string_value(s), json_string_length(s));
        if (hit && (best == NULL || hit < best)) {
            best = hit;
            bl = i;
        }
    }
    if (best == NULL)
        return;
    c->len = (size_t)(best - c->text);
    c->text[c->len] = '\0';
    free(c->starts);
    mock_choice_tokenise(c, 0);
    a->stop_sequence = xstrdup(json_string_value(json_array_get(seqs, bl)));
}

int mock_anth_gen(const json_t *req, const struct mock_gen_opts *o, int tool_calls,
                  struct mock_answer *a, struct mock_err *err)
{
    json_t *chat;
    long long out = 0;
    int rc, length = 0, tools = 0;

    memset(a, 0, sizeof(*a));
    if (anth_check(req, 0, err) < 0)
        return -1;
    chat = chat_view(req);
    if (chat == NULL)
        return anth_fail(err, "messages: too large for sluice-mock");
    rc = mock_gen_chat(chat, o, a, err);
    json_decref(chat);
    if (rc < 0)
        return -1;
    snprintf(a->id, sizeof(a->id), "msg_mock_%llu", o->seq);
    a->stream = json_is_true(json_object_get(req, "stream"));
    if (tool_calls > 0)
        many_tools(req, o, tool_calls, a);
    for (size_t i = 0; i < a->nchoices; i++) {
        struct mock_choice *c = &a->choices[i];

        if (c->tool_name) {
            tools = 1;
            if (strncmp(c->tool_id, "call_mock_", 10) == 0)
                tool_id(c, mock_hash(c->tool_id, strlen(c->tool_id), 0));
        } else if (!a->replayed) {
            apply_stop(req, a, c);
        }
        length |= c->finish_reason && strcmp(c->finish_reason, "length") == 0;
        out += (long long)c->ntok;
    }
    if (!a->replayed) /* a recorded answer keeps its recorded usage */
        a->completion_tokens = out;
    a->stop_reason = a->stop_sequence ? "stop_sequence"
                     : tools          ? "tool_use"
                     : length         ? "max_tokens"
                                      : "end_turn";
    return 0;
}

int mock_anth_count_tokens(const json_t *req, long long *tokens, struct mock_err *err)
{
    struct mock_gen_opts o = {.model = json_string_value(json_object_get(req, "model"))};
    struct mock_answer a;
    json_t *chat;
    int rc;

    if (anth_check(req, 1, err) < 0)
        return -1;
    chat = chat_view(req);
    if (chat == NULL)
        return anth_fail(err, "messages: too large for sluice-mock");
    json_object_del(chat, "tools"); /* count the prompt; do not call a tool */
    rc = mock_gen_chat(chat, &o, &a, err);
    json_decref(chat);
    if (rc < 0)
        return -1;
    *tokens = a.prompt_tokens;
    mock_answer_free(&a);
    return 0;
}

/* ---- rendering ---- */

/* Anthropic's input_tokens leaves out what was read from or written to the
 * prompt cache. */
static long long input_tokens(const struct mock_answer *a)
{
    long long in = a->prompt_tokens - a->cache_read - a->cache_write;

    return in > 0 ? in : 0;
}

static json_t *anth_usage(const struct mock_answer *a, long long output)
{
    return json_pack("{s:I,s:I,s:I,s:I}", "input_tokens", (json_int_t)input_tokens(a),
                     "cache_creation_input_tokens", (json_int_t)a->cache_write,
                     "cache_read_input_tokens", (json_int_t)a->cache_read, "output_tokens",
                     (json_int_t)output);
}

static json_t *block_json(const struct mock_choice *c, int start)
{
    json_t *in;

    if (c->tool_name == NULL)
        return json_pack("{s:s,s:s%}", "type", "text", "text", start ? "" : c->text,
                         start ? (size_t)0 : c->len);
    in = start ? json_object() : json_loadb(c->text, c->len, 0, NULL);
    return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", c->tool_id, "name",
                     c->tool_name, "input", in ? in : json_object());
}

static json_t *message_json(const struct mock_answer *a, int start)
{
    json_t *content = json_array();

    for (size_t i = 0; !start && i < a->nchoices; i++)
        json_array_append_new(content, block_json(&a->choices[i], 0));
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:s?,s:s?,s:o}", "id", a->id, "type", "message", "role",
                     "assistant", "model", a->model, "content", content, "stop_reason",
                     start ? NULL : a->stop_reason, "stop_sequence",
                     start ? NULL : a->stop_sequence, "usage",
                     anth_usage(a, start ? 1 : a->completion_tokens));
}

char *mock_anth_render_json(const struct mock_answer *a, int truncated_json, size_t *len)
{
    json_t *m = message_json(a, 0);
    char *s = json_dumps(m, JSON_COMPACT);

    json_decref(m);
    if (s == NULL)
        sl_panic("mock_anth_render_json: json_dumps failed");
    *len = strlen(s);
    if (truncated_json)
        mock_json_cut(s, len, "\"content\":["); /* inside the first block */
    return s;
}

/* Emit event `name` with data j (freed). */
static int emit(struct buf *b, const char *name, json_t *j, int chunked)
{
    char *s = json_dumps(j, JSON_COMPACT);
    int r;

    json_decref(j);
    if (s == NULL)
        sl_panic("mock anthropic stream: json_dumps failed");
    r = mock_emit_event(b, name, s, strlen(s), chunked);
    free(s);
    return r;
}

static int emit_block_start(struct buf *b, const struct mock_answer *a, size_t i, int chunked)
{
    return emit(b, "content_block_start",
                json_pack("{s:s,s:I,s:o}", "type", "content_block_start", "index", (json_int_t)i,
                          "content_block", block_json(&a->choices[i], 1)),
                chunked);
}

static int emit_block_stop(struct buf *b, size_t i, int chunked)
{
    return emit(b, "content_block_stop",
                json_pack("{s:s,s:I}", "type", "content_block_stop", "index", (json_int_t)i),
                chunked);
}

static int mock_anth_emit_delta(struct buf *b, const struct mock_choice *c, size_t i, const char *p,
                                size_t n, int chunked)
{
    json_t *d = c->tool_name
                    ? json_pack("{s:s,s:s%}", "type", "input_json_delta", "partial_json", p, n)
                    : json_pack("{s:s,s:s%}", "type", "text_delta", "text", p, n);

    return emit(b, "content_block_delta",
                json_pack("{s:s,s:I,s:o}", "type", "content_block_delta", "index", (json_int_t)i,
                          "delta", d),
                chunked);
}

static void anth_step_end(struct mock_stream *s, size_t *step)
{
    s->ends[(*step)++] = s->data.len;
}

int mock_anth_render_stream(const struct mock_answer *a, size_t chunks, int malformed,
                            int error_event, int chunked, struct mock_stream *s)
{
    size_t **bounds = xcalloc(a->nchoices ? a->nchoices : 1, sizeof(*bounds));
    size_t *nb = xcalloc(a->nchoices ? a->nchoices : 1, sizeof(*nb));
    size_t max_steps = 3, events = 0, step = 0;
    int r = 0;

    if (chunks == 0)
        chunks = 1;
    if (chunks > ANTH_MAX_CHUNKS)
        chunks = ANTH_MAX_CHUNKS;
    for (size_t i = 0; i < a->nchoices; i++) {
        bounds[i] = mock_choice_bounds(&a->choices[i], chunks, &nb[i]);
        max_steps += nb[i] + 1;
        events += nb[i];
    }
    buf_init(&s->data, MOCK_STREAM_MAX);
    s->ends = xcalloc(max_steps, sizeof(*s->ends));
    if (events > ANTH_MAX_EVENTS)
        r = -1;

    /* Step 0: the message opens, its first block starts, a ping. */
    if (r == 0)
        r = emit(&s->data, "message_start",
                 json_pack("{s:s,s:o}", "type", "message_start", "message", message_json(a, 1)),
                 chunked);
    if (r == 0 && a->nchoices > 0)
        r = emit_block_start(&s->data, a, 0, chunked);
    if (r == 0)
        r = mock_emit_event(&s->data, "ping", "{\"type\": \"ping\"}", 16, chunked);
    if (r == 0 && malformed)
        r = mock_emit_event(&s->data, "content_block_delta", "{not json", 9, chunked);
    anth_step_end(s, &step);
    if (error_event) {
        static const char e[] = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                "\"message\":\"Overloaded\"}}";

        if (r == 0)
            r = mock_emit_event(&s->data, "error", e, sizeof(e) - 1, chunked);
        goto end;
    }

    /* One step per delta; a block's stop and the next one's start go with
     * the next block's first delta. */
    for (size_t i = 0; i < a->nchoices && r == 0; i++) {
        const struct mock_choice *c = &a->choices[i];

        if (i > 0) {
            r = emit_block_stop(&s->data, i - 1, chunked);
            if (r == 0)
                r = emit_block_start(&s->data, a, i, chunked);
            if (nb[i] == 0)
                anth_step_end(s, &step);
        }
        for (size_t j = 0; j < nb[i] && r == 0; j++) {
            r = mock_anth_emit_delta(&s->data, c, i, c->text + bounds[i][j],
                                     bounds[i][j + 1] - bounds[i][j], chunked);
            anth_step_end(s, &step);
        }
    }

    /* The last step: the last block stops, the message ends. */
    if (r == 0 && a->nchoices > 0)
        r = emit_block_stop(&s->data, a->nchoices - 1, chunked);
    if (r == 0)
        r = emit(&s->data, "message_delta",
                 json_pack("{s:s,s:{s:s,s:s?},s:o}", "type", "message_delta", "delta",
                           "stop_reason", a->stop_reason, "stop_sequence", a->stop_sequence,
                           "usage", anth_usage(a, a->completion_tokens)),
                 chunked);
    if (r == 0)
        r = emit(&s->data, "message_stop", json_pack("{s:s}", "type", "message_stop"), chunked);
end:
    if (r == 0 && chunked)
        r = buf_append(&s->data, "0\r\n\r\n", 5);
    anth_step_end(s, &step);
    s->nsteps = step;
    for (size_t i = 0; i < a->nchoices; i++)
        free(bounds[i]);
    free(bounds);
    free(nb);
    if (r != 0) {
        mock_stream_free(s);
        return -1;
    }
    return 0;
}
