/* The error table: every code has a message, a name, a class and a gateway
 * status, and the classes say what the pool, the agents and the gateway do
 * with it. A code added to AG_ERRNO_MAP without a class fails here. */
#include "test.h"
#include "agents/error.h"
#include "core/errclass.h"

typedef struct expect {
    int code;
    unsigned cls;
    int http;
} expect;

#define R AG__EC_RETRY
#define N AG__EC_NODE
#define C AG__EC_CALLER
/* what each code means, written out once more: a change to the policy shows
 * up here as a deliberate edit */
static const expect want[] = {
    {AG_EINVAL, C, 400},           {AG_ENOMEM, 0, 500},         {AG_ECANCELED, 0, 499},
    {AG_ESHUTDOWN, 0, 503},        {AG_ECONNREFUSED, R | N, 502}, {AG_ECONNRESET, R | N, 502},
    {AG_EDNS, R | N, 502},         {AG_ETIMEDOUT, R | N, 504},  {AG_EIDLE, R | N, 504},
    {AG_EHTTP, R | N, 502},        {AG_EBADREQUEST, C, 400},    {AG_ENOTFOUND, C, 404},
    {AG_EBUSY, R | N, 503},        {AG_ESERVER, R | N, 502},    {AG_EPROTO, R | N, 502},
    {AG_EJSON, R | N, 502},        {AG_ETRUNCATED, R | N, 502}, {AG_ELOST, N, 502},
    {AG_ETOOBIG, 0, 502},          {AG_EQUEUEFULL, R, 503},     {AG_ECONNECT, R | N, 502},
    {AG_EHOST, C, 400},            {AG_ENONODE, R, 503},        {AG_ESTEPS, 0, 500},
    {AG_ETLS, R | N, 502},         {AG_EDEADLINE, 0, 504},
    {AG_EAUTH, C, 401},
};

static void every_code(void) {
    int n = 0;
#define ONE(name, c, msg)                                                                          \
    do {                                                                                           \
        n++;                                                                                       \
        const expect *e = NULL;                                                                    \
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)                                  \
            if (want[i].code == (c)) e = &want[i];                                                 \
        if (!e) {                                                                                  \
            fprintf(stderr, "AG_%s has no expected class in this test\n", #name);                  \
            t_failures++;                                                                          \
            break;                                                                                 \
        }                                                                                          \
        CHECK_STR(ag_err_name(c), #name);                                                          \
        CHECK(strcmp(ag_strerror(c), "unknown error") != 0);                                       \
        CHECK_INT(ag__err_class(c, 0), e->cls);                                                    \
        CHECK_INT(ag__err_http(c), e->http);                                                       \
        unsigned k = ag__err_class(c, 0);                                                          \
        if (k & C) CHECK_INT(k & (R | N), 0); /* the request's fault is nobody else's */            \
    } while (0);
    AG_ERRNO_MAP(ONE)
#undef ONE
    CHECK_INT(n, (int)(sizeof want / sizeof want[0]));
    CHECK_INT(ag__err_class(0, 0), 0);
    CHECK_INT(ag__err_class(-999, 0), 0);
    CHECK_INT(ag__err_http(-999), 0);
}

/* an HTTP error is the node's transient fault when 5xx (or 429), else the
 * request's */
static void http_refines(void) {
    CHECK_INT(ag__err_class(AG_EHTTP, 500), R | N);
    CHECK_INT(ag__err_class(AG_EHTTP, 502), R | N);
    CHECK_INT(ag__err_class(AG_EHTTP, 429), R | N);
    CHECK_INT(ag__err_class(AG_EHTTP, 401), C);
    CHECK_INT(ag__err_class(AG_EHTTP, 418), C);
}

T_MAIN(T(every_code), T(http_refines))
