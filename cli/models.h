/* cli/models.h - what the model commands (cli/models.c) and create
 * (cli/create.c) share: one request with its JSON kept and its progress
 * drawn, a forwarded body, a growing JSON buffer. */
#ifndef AG_CLI_MODELS_H
#define AG_CLI_MODELS_H
#include "cli/cli.h"

#include <stdint.h>

/* one request: its JSON kept, its progress drawn */
typedef struct one {
    int done, status, http;
    char *raw; /* the last whole object (AG_CHUNK_RAW), or a forwarded body's bytes */
    size_t len, cap;
    size_t line_start; /* forwarded NDJSON: where the next line starts */
    progress *pg;
    char err[400];
    char version[64];
} one;
void one_chunk(ag_request *r, const ag_chunk *ch, void *ud);
void one_done(ag_request *r, const ag_result *res, void *ud);
/* runs the loop until x is done (rc: the starting call's); its status */
int wait_one(one *x, int rc);
void say_error(const one *x);
/* a body sent as is (push, create, blobs): what the library has no call for */
int forward(ag_client *c, const char *method, const char *path, const char *body, size_t len, const char *model,
            progress *pg, one *x);

/* JSON into a growing buffer (exits on out of memory: a command line tool) */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;
void sb_add(sbuf *b, const char *s, size_t n);
void sb_str(sbuf *b, const char *s);
void sb_json(sbuf *b, const char *s, size_t n);
int is_num(const char *s);
#endif
