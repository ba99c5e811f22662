/* agents/error.h - error codes.
 *
 * Every fallible call returns 0 or a negative AG_E* code, and every request
 * completes with one of them. ag_strerror() gives a sentence, ag_err_name()
 * the symbol. Both return static strings. The server's own message, when there
 * is one, is carried separately on the result (ag_result.error).
 */
#ifndef AGENTS_ERROR_H
#define AGENTS_ERROR_H
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_ERRNO_MAP(X)                                                                        \
    X(EINVAL, -1, "invalid argument")                                                          \
    X(ENOMEM, -2, "out of memory")                                                             \
    X(ECANCELED, -3, "request cancelled")                                                      \
    X(ESHUTDOWN, -4, "client freed while the request was pending")                             \
    X(ECONNREFUSED, -5, "connection refused")                                                  \
    X(ECONNRESET, -6, "connection closed before any output was delivered")                     \
    X(EDNS, -7, "host name could not be resolved")                                             \
    X(ETIMEDOUT, -8, "connect timed out")                                                      \
    X(EIDLE, -9, "no bytes from the server within the idle timeout")                           \
    X(EHTTP, -10, "server answered with an HTTP error status")                                 \
    X(EBADREQUEST, -11, "server rejected the request (HTTP 400)")                              \
    X(ENOTFOUND, -12, "not found on the server (HTTP 404: model missing?)")                    \
    X(EBUSY, -13, "server busy (HTTP 503: queue full)")                                        \
    X(ESERVER, -14, "server reported an error inside the stream")                              \
    X(EPROTO, -15, "malformed HTTP response")                                                  \
    X(EJSON, -16, "malformed JSON in the response")                                            \
    X(ETRUNCATED, -17, "response ended without its final object")                              \
    X(ELOST, -18, "connection lost after output was delivered")                                \
    X(ETOOBIG, -19, "response exceeded a configured size cap")                                 \
    X(EQUEUEFULL, -20, "too many requests waiting for a connection")                           \
    X(ECONNECT, -21, "could not connect to the server")                                        \
    X(EHOST, -22, "invalid host address")                                                     \
    X(ENONODE, -23, "no healthy node serves this model")                                       \
    X(ESTEPS, -24, "the agent reached its step limit")                                         \
    X(ETLS, -25, "TLS handshake or certificate verification failed")                           \
    X(EDEADLINE, -26, "the request's deadline passed")                                        \
    X(EAUTH, -27, "the server refused the credentials (HTTP 401 or 403)")

enum {
#define AG__ERR_ENUM(name, code, msg) AG_##name = code,
    AG_ERRNO_MAP(AG__ERR_ENUM)
#undef AG__ERR_ENUM
    AG_OK = 0
};

/* A sentence describing code ("unknown error" for codes not in the table). */
AG_API const char *ag_strerror(int code);
/* The symbol of code without the prefix, e.g. "ECONNREFUSED". */
AG_API const char *ag_err_name(int code);

#ifdef __cplusplus
}
#endif
#endif
