/* core/error.c - the error table: messages and names (from AG_ERRNO_MAP),
 * and each code's class and gateway status (core/errclass.h). */
#include "agents/error.h"
#include "core/errclass.h"

#define R AG__EC_RETRY
#define N AG__EC_NODE
#define C AG__EC_CALLER
static const struct {
    unsigned char cls;
    short http;
} classes[] = {
    [-AG_EINVAL] = {C, 400},           [-AG_ENOMEM] = {0, 500},
    [-AG_ECANCELED] = {0, 499},        [-AG_ESHUTDOWN] = {0, 503},
    [-AG_ECONNREFUSED] = {R | N, 502}, [-AG_ECONNRESET] = {R | N, 502},
    [-AG_EDNS] = {R | N, 502},         [-AG_ETIMEDOUT] = {R | N, 504},
    [-AG_EIDLE] = {R | N, 504},        [-AG_EHTTP] = {R | N, 502},
    [-AG_EBADREQUEST] = {C, 400},      [-AG_ENOTFOUND] = {C, 404},
    [-AG_EBUSY] = {R | N, 503},        [-AG_ESERVER] = {R | N, 502},
    [-AG_EPROTO] = {R | N, 502},       [-AG_EJSON] = {R | N, 502},
    [-AG_ETRUNCATED] = {R | N, 502},   [-AG_ELOST] = {N, 502},
    [-AG_ETOOBIG] = {0, 502},          [-AG_EQUEUEFULL] = {R, 503},
    [-AG_ECONNECT] = {R | N, 502},     [-AG_EHOST] = {C, 400},
    [-AG_ENONODE] = {R, 503},          [-AG_ESTEPS] = {0, 500},
    [-AG_ETLS] = {R | N, 502},         [-AG_EDEADLINE] = {0, 504},
    [-AG_EAUTH] = {C, 401},
};
#undef R
#undef N
#undef C

unsigned ag__err_class(int code, int http_status) {
    if (code >= 0 || (unsigned)-code >= sizeof classes / sizeof classes[0]) return 0;
    if (code == AG_EHTTP && http_status == 429) return AG__EC_RETRY | AG__EC_NODE; /* rate limited */
    if (code == AG_EHTTP && http_status && http_status < 500) return AG__EC_CALLER;
    return classes[-code].cls;
}

int ag__err_http(int code) {
    if (code >= 0 || (unsigned)-code >= sizeof classes / sizeof classes[0]) return 0;
    return classes[-code].http; /* 0: a code the table forgot (test_errors fails on it) */
}

const char *ag_strerror(int code) {
    switch (code) {
    case 0: return "success";
#define AG__ERR_MSG(name, c, msg) case c: return msg;
        AG_ERRNO_MAP(AG__ERR_MSG)
#undef AG__ERR_MSG
    default: return "unknown error";
    }
}

const char *ag_err_name(int code) {
    switch (code) {
    case 0: return "OK";
#define AG__ERR_NAME(name, c, msg) case c: return #name;
        AG_ERRNO_MAP(AG__ERR_NAME)
#undef AG__ERR_NAME
    default: return "UNKNOWN";
    }
}
