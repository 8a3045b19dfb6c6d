/*
 * resolve.c - ek_resolve: getaddrinfo on the blocking pool, as a future.
 *
 * The lookup is a blocking job (ek_spawn_blocking) whose join handle becomes the
 * future (ek_join_into_future); so dropping the future detaches the job, and the
 * list it produces then goes to its out_drop. Nothing here blocks a worker.
 */
#include "sock.h"

#include <netdb.h>
#include <stdio.h>
#include <netinet/in.h>

struct ek_addr_list {
    uint32_t tag; /* EK__TAG_ADDR_LIST */
    size_t count;
    ek_sockaddr addrs[]; /* each a live ek_sockaddr (tagged), borrowed by callers */
};

typedef struct ek__resolve_job {
    char *host; /* NULL: wildcard (passive) */
    uint16_t port;
    unsigned hints;
} ek__resolve_job;

/* getaddrinfo's codes to ours. */
static int ek__gai_err(int e)
{
    switch (e) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_SERVICE:
        return EK_EAI_NONAME;
    case EAI_AGAIN:
        return EK_EAI_AGAIN;
    case EAI_FAIL:
        return EK_EAI_FAIL;
    case EAI_FAMILY:
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return EK_EAI_FAMILY;
    case EAI_MEMORY:
        return EK_ENOMEM;
    case EAI_SYSTEM:
        return ek__err(errno);
    default:
        return EK_EAI_OTHER;
    }
}

static int ek__resolve_run(void *arg, void **out)
{
    ek__resolve_job *job = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    unsigned fam = job->hints & (EK_RESOLVE_INET | EK_RESOLVE_INET6);
    hints.ai_family = fam == EK_RESOLVE_INET ? AF_INET : fam == EK_RESOLVE_INET6 ? AF_INET6 : 0;
    if (job->hints & EK_RESOLVE_PASSIVE) hints.ai_flags |= AI_PASSIVE;
    if (fam == 0) hints.ai_flags |= AI_ADDRCONFIG;
    /* The port as a numeric service: getaddrinfo refuses a NULL host with a
     * NULL service, which a passive lookup needs. */
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)job->port);
    hints.ai_flags |= AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int e = getaddrinfo(job->host, service, &hints, &res);
    if ((e == EAI_NONAME || e == EAI_ADDRFAMILY) && (hints.ai_flags & AI_ADDRCONFIG)) {
        /* AI_ADDRCONFIG hides families the host has no (non-loopback) address
         * of, which in containers can be all of them: "localhost" and
         * "127.0.0.1" must still resolve. */
        hints.ai_flags &= ~AI_ADDRCONFIG;
        e = getaddrinfo(job->host, service, &hints, &res);
    }
    if (e != 0) return ek__gai_err(e);
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) n++;
    if (n == 0) {
        freeaddrinfo(res);
        return EK_EAI_NONAME;
    }
    ek_addr_list *list = ek__calloc(1, sizeof *list + n * sizeof(ek_sockaddr));
    if (list == NULL) {
        freeaddrinfo(res);
        return EK_ENOMEM;
    }
    list->tag = EK__TAG_ADDR_LIST;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        ek_sockaddr *a = &list->addrs[list->count++];
        a->tag = EK__TAG_SOCKADDR;
        ek__sockaddr_assign(a, ai->ai_addr, ai->ai_addrlen);
        ek_sockaddr_set_port(a, job->port);
    }
    freeaddrinfo(res);
    *out = list;
    return EK_OK;
}

static void ek__resolve_job_drop(void *arg)
{
    ek__resolve_job *job = arg;
    ek__free(job->host);
    ek__free(job);
}

static void ek__addr_list_drop(void *list)
{
    ek_addr_list_free(list);
}

int ek_resolve(ek_runtime *rt, const char *host, uint16_t port, unsigned hints, ek_future **out)
{
    const unsigned known = EK_RESOLVE_INET | EK_RESOLVE_INET6 | EK_RESOLVE_PASSIVE;
    if (out == NULL || (hints & ~known) || (host == NULL && !(hints & EK_RESOLVE_PASSIVE)))
        return EK_EINVAL;
    int rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    ek__resolve_job *job = ek__calloc(1, sizeof *job);
    if (job == NULL) return EK_ENOMEM;
    job->port = port;
    job->hints = hints;
    if (host != NULL) {
        size_t n = strlen(host) + 1;
        job->host = ek__malloc(n);
        if (job->host == NULL) {
            ek__free(job);
            return EK_ENOMEM;
        }
        memcpy(job->host, host, n);
    }
    ek_join *j = NULL;
    /* On error ek_spawn_blocking has already run the job's drop. */
    rc = ek_spawn_blocking(rt, ek__resolve_run, ek__resolve_job_drop, job, ek__addr_list_drop, &j);
    if (rc != EK_OK) return rc;
    return ek_join_into_future(j, out);
}

int ek_addr_list_count(const ek_addr_list *list)
{
    if (!EK__CHECK_TAG(list, EK__TAG_ADDR_LIST)) return EK_EINVAL;
    return (int)list->count;
}

const ek_sockaddr *ek_addr_list_get(const ek_addr_list *list, size_t i)
{
    if (!EK__CHECK_TAG(list, EK__TAG_ADDR_LIST) || i >= list->count) return NULL;
    return &list->addrs[i];
}

void ek_addr_list_free(ek_addr_list *list)
{
    if (!EK__CHECK_TAG(list, EK__TAG_ADDR_LIST)) return;
    list->tag = EK__TAG_DEAD;
    ek__free(list);
}
