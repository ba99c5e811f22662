/* core/error.c - the error table. */
#include "agents/error.h"

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
