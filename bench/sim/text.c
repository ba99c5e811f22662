/* bench/sim/text.c - the simulated node's deterministic text: the tokens of
 * an answer (the same prompt, the same tokens), and embeddings in which texts
 * sharing words are close. */
#include "sim_internal.h"

static const word vocab[] = {
    {"The ", "The "},   {"sky ", "sky "},         {"is ", "is "},
    {"blue ", "blue "}, {"because ", "because "}, {"air ", "air "},
    {"scatters ", "scatters "}, {"short ", "short "}, {"waves ", "waves "},
    {"of ", "of "},     {"light ", "light "},     {"more ", "more "},
    {"than ", "than "}, {"long ", "long "},       {"ones", "ones"},
    {". ", ". "},       {"Rayleigh ", "Rayleigh "}, {"café ", "café "},
    {"naïve ", "naïve "}, {"\"quoted\" ", "\\\"quoted\\\" "}, {"line\n", "line\\n"},
    {"tab\t", "tab\\t"}, {"🌍 ", "🌍 "},         {"and ", "and "},
    {"so ", "so "},     {"on ", "on "},           {"a ", "a "},
    {"model ", "model "}, {"answers ", "answers "}, {"token ", "token "},
    {"by ", "by "},     {"token. ", "token. "}};
#define NVOCAB (sizeof vocab / sizeof vocab[0])

uint64_t sim_fnv(const char *a, const char *b) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = a; p && *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = b; p && *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

const word *sim_token_at(uint64_t seed, int i) {
    uint64_t x = seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return &vocab[x % NVOCAB];
}

/* r1-style models: tokens 0..2 open the thought ("<thi", "nk>" cut across
 * tokens), then thinking, "</th" "ink>", then the answer */
const word *sim_r1_token(uint64_t seed, int i, int n) {
    static const word open1 = {"<thi", "<thi"}, open2 = {"nk>", "nk>"}, close1 = {"</th", "</th"},
                      close2 = {"ink>\n", "ink>\\n"};
    int think_end = n / 3 > 3 ? n / 3 : 3;
    if (i == 0) return &open1;
    if (i == 1) return &open2;
    if (i == think_end) return &close1;
    if (i == think_end + 1) return &close2;
    return sim_token_at(seed, i);
}

int sim_is_r1(const char *model) {
    return strstr(model, "r1") != NULL;
}

const char *ag_sim_token(const char *model, const char *prompt, int i) {
    return sim_token_at(sim_fnv(model, prompt), i)->raw;
}

const char *ag_sim_token_n(const char *model, const char *prompt, int i, int n) {
    uint64_t seed = sim_fnv(model, prompt);
    return sim_is_r1(model) ? sim_r1_token(seed, i, n)->raw : sim_token_at(seed, i)->raw;
}

static uint32_t hash_word(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)tolower((unsigned char)s[i])) * 16777619u;
    return h;
}

void ag_sim_embed_text(const char *text, int dim, float *out) {
    memset(out, 0, sizeof(float) * (size_t)dim);
    const char *p = text;
    int any = 0;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p)) p++;
        const char *b = p;
        while (*p && isalnum((unsigned char)*p)) p++;
        if (p > b) {
            uint32_t h = hash_word(b, (size_t)(p - b));
            out[h % (uint32_t)dim] += (h & 0x80000000u) ? -1.0f : 1.0f;
            uint32_t h2 = h * 2654435761u;
            out[h2 % (uint32_t)dim] += (h2 & 0x80000000u) ? -0.5f : 0.5f;
            any = 1;
        }
    }
    if (!any) out[0] = 1.0f;
    double norm = 0;
    for (int i = 0; i < dim; i++) norm += (double)out[i] * out[i];
    norm = sqrt(norm);
    for (int i = 0; i < dim; i++) out[i] = (float)(out[i] / norm);
}
