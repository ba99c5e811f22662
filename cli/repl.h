/* cli/repl.h - the interactive session's state, shared by cli/repl.c (the
 * line editor, the conversation, the loop) and cli/repl_cmds.c (the slash
 * commands). */
#ifndef AG_CLI_REPL_H
#define AG_CLI_REPL_H
#include "cli/cli.h"

#define LINE_MAX_BYTES 65536
#define HISTORY_MAX 1000

typedef struct msg {
    char *role, *content;
} msg;

typedef struct repl {
    opts *o;
    ag_client *c;
    char model[256];
    char *system;
    char params[4096]; /* "k":v,... without braces */
    char think[16], format[8];
    int verbose;
    /* the conversation */
    msg *msgs;
    size_t n, cap;
    char **images; /* --image files, base64, for the first question */
    size_t n_images;
    /* the editor */
    char line[LINE_MAX_BYTES];
    size_t len, pos;
    int esc; /* 0, 1 after ESC, 2 after ESC [ or ESC O */
    char escbuf[8];
    size_t esclen;
    char *multi; /* text of several lines so far ("""), or NULL */
    size_t multi_len;
    char *hist[HISTORY_MAX];
    int nhist, hpos;
    char *saved; /* the line being typed while browsing history */
    char hist_path[1024];
    /* the answer */
    int answering, quit;
    ag_request *req;
    char *answer;
    size_t alen, acap;
    run_state rs;
    struct event *kbd;
    char session[64];
} repl;

/* cli/repl.c */
void out(const char *s);
void add_msg(repl *r, const char *role, const char *content);
void clear_msgs(repl *r);
void json_str(FILE *f, const char *s);
void hist_load(repl *r);
void prompt_again(repl *r);
/* cli/repl_cmds.c: /?, /set, /show, /save, /load */
void repl_help(const char *what);
void repl_set(repl *r, char *args);
void repl_show(repl *r, char *args);
void repl_save(repl *r, const char *path);
void repl_load(repl *r, const char *what);
#endif
