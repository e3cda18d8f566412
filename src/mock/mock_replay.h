/* mock_replay.h - recorded answers that sluice-mock replays by (model, prompt).
 *
 * The files are the RouterBench JSONL of /work/shared/data/routerbench: one
 * object a line, {"id","dataset","prompt","answers":{"<model>":{"content",
 * "correct","prompt_tokens","completion_tokens","cost_usd"}}}. Everything is
 * loaded at startup into one open-addressing hash table; lookups never
 * allocate.
 */
#ifndef SLUICE_MOCK_REPLAY_H
#define SLUICE_MOCK_REPLAY_H

#include <stddef.h>

struct mock_replay;

/* One recorded answer. Owned by the table. */
struct mock_replay_answer {
    const char *content;
    size_t content_len;
    long long prompt_tokens;
    long long completion_tokens;
};

struct mock_replay *mock_replay_new(void);
void mock_replay_free(struct mock_replay *r);

/* Load one JSONL file into r. On error return -1 with a message naming the
 * file and line in err; r keeps what earlier lines added. A (model, prompt)
 * pair seen twice keeps its first answer. */
int mock_replay_load(struct mock_replay *r, const char *path, char *err, size_t errlen);

/* Index of a replayed model, or -1 when no file recorded it. */
int mock_replay_model_index(const struct mock_replay *r, const char *model);
size_t mock_replay_nmodels(const struct mock_replay *r);
/* Model names in the order the files first mention them; borrowed. */
const char *mock_replay_model(const struct mock_replay *r, size_t i);
size_t mock_replay_nanswers(const struct mock_replay *r);

/* The recorded answer of model index m to prompt[0..len), or NULL. */
const struct mock_replay_answer *mock_replay_find(const struct mock_replay *r, int m,
                                                  const char *prompt, size_t len);

#endif
