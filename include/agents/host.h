/* agents/host.h - node addresses, parsed the way Ollama parses OLLAMA_HOST. */
#ifndef AGENTS_HOST_H
#define AGENTS_HOST_H
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_host {
    char scheme[8];   /* "http" or "https" */
    char host[256];   /* name or address, IPv6 without brackets */
    int port;         /* 0..65535 */
    char path[256];   /* base path without trailing slash, "" when none */
    /* credentials from "scheme://user:password@host" (Basic) or
     * "scheme://token@host" (Bearer); never printed by the library */
    char user[256];
    char password[256];
    int has_password;
    int dialect;      /* AG_API_OLLAMA, or AG_API_OPENAI from "openai+http://..." */
} ag_host;

enum ag_api { AG_API_OLLAMA = 0, AG_API_OPENAI = 1 };

/* Parses s as Ollama's envconfig.Host() does: spaces and quotes trimmed; no
 * scheme means http with port 11434; "http://" defaults to port 80 and
 * "https://" to 443; empty host means 127.0.0.1; "[::1]:11435" is IPv6; a path
 * after the host is kept as a base path; "user:password@" before the host
 * gives Basic credentials, "token@" a Bearer token (percent-escapes decoded).
 * A "openai+" before the scheme ("openai+http://host:8000") marks a node that
 * speaks the OpenAI-compatible API; "ollama+" the default. s may be NULL (= "").
 * Returns 0, or AG_EHOST for a bad port or an unknown scheme (out is then
 * still filled with the defaults, as Ollama falls back to them). */
AG_API int ag_host_parse(const char *s, ag_host *out);

/* Same, from the OLLAMA_HOST environment variable, or OLLAMA_URL (the
 * original Python package's name) when OLLAMA_HOST is unset or empty. */
AG_API int ag_host_from_env(ag_host *out);

/* Writes "scheme://host:port/path" (IPv6 bracketed; credentials left out)
 * into buf; returns buf. */
AG_API char *ag_host_format(const ag_host *h, char *buf, unsigned size);

#ifdef __cplusplus
}
#endif
#endif
