/* core/errclass.h - what each error code means for whoever handles it: the
 * one policy the pool (retry elsewhere, count against the node), the agent
 * tasks (retry the whole task later) and the gateway (the HTTP status for its
 * client) all read, instead of a switch each (core/error.c holds the table). */
#ifndef AG_CORE_ERRCLASS_H
#define AG_CORE_ERRCLASS_H

enum {
    AG__EC_RETRY = 1,  /* transient: another attempt (elsewhere, or later) may succeed;
                          only ever retried while nothing reached the caller */
    AG__EC_NODE = 2,   /* the node is to blame: counts against its health */
    AG__EC_CALLER = 4  /* the request itself is wrong: the same everywhere, never retried */
};
/* Codes with none of these are the caller's own conditions (cancelled, shut
 * down, out of memory, a cap of ours, the step limit). */

/* The class of code; http_status refines AG_EHTTP (a 5xx is the node's
 * transient fault, another status the request's). 0 for 0 and unknown codes. */
unsigned ag__err_class(int code, int http_status);

/* The HTTP status a gateway answers when a request failed with code before
 * any byte went out (a node's own status, when it sent one, wins); 0 for 0
 * and unknown codes. */
int ag__err_http(int code);

#endif
