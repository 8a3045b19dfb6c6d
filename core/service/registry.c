/*
 * registry.c - named services per runtime (ek_registry_*).
 *
 * One process-wide table, guarded by one mutex, holds a registry per runtime
 * that has registered something. The registry's lifetime is tied to its
 * runtime without the runtime knowing about services: the first registration
 * spawns a keeper task that never completes, and shutdown drops every task, so
 * the keeper's drop empties and removes the registry. Services are freed
 * outside the lock (a service's drop may use the registry). The mutex is
 * recursive for one case only: a keeper whose spawn fails is dropped at once,
 * on the thread that holds the lock to create it.
 */
#include "rt.h"
#include "service/svc.h"

typedef struct reg_entry {
    struct reg_entry *next;
    ek_service *svc;
    char name[]; /* NUL-terminated */
} reg_entry;

typedef struct registry {
    struct registry *next;
    ek_runtime *rt;
    reg_entry *entries;
    bool linked;
} registry;

static pthread_mutex_t lock;
static pthread_once_t lock_once = PTHREAD_ONCE_INIT;
static registry *registries;

static void lock_init(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&lock, &a);
    pthread_mutexattr_destroy(&a);
}

static void reg_lock(void)
{
    pthread_once(&lock_once, lock_init);
    pthread_mutex_lock(&lock);
}

static void reg_unlock(void)
{
    pthread_mutex_unlock(&lock);
}

static void entries_free(reg_entry *e)
{
    while (e) {
        reg_entry *next = e->next;
        ek_service_free(e->svc);
        ek__free(e);
        e = next;
    }
}

/* Locked. */
static registry *find_registry(ek_runtime *rt)
{
    for (registry *r = registries; r; r = r->next)
        if (r->rt == rt) return r;
    return NULL;
}

/* Locked. The link that points at the entry named `name`, or at the list's end. */
static reg_entry **find_entry(registry *r, const char *name)
{
    reg_entry **p = &r->entries;
    while (*p && strcmp((*p)->name, name) != 0) p = &(*p)->next;
    return p;
}

static int keeper_poll(void *state, ek_cx *cx, void **out)
{
    (void)state;
    (void)cx;
    (void)out;
    return EK_PENDING; /* never woken: it only exists to be dropped at shutdown */
}

static void keeper_drop(void *state)
{
    registry *r = state;
    reg_lock();
    if (r->linked) {
        registry **p = &registries;
        while (*p != r) p = &(*p)->next;
        *p = r->next;
    }
    reg_entry *e = r->entries;
    r->entries = NULL;
    reg_unlock();
    entries_free(e);
    ek__free(r);
}

static int check_name(const char *name, size_t *len)
{
    if (name == NULL) return EK_EINVAL;
    size_t n = strnlen(name, EK_REGISTRY_NAME_MAX + 1);
    if (n == 0 || n > EK_REGISTRY_NAME_MAX) return EK_EINVAL;
    *len = n;
    return EK_OK;
}

int ek_registry_register(ek_runtime *rt, const char *name, ek_service *svc)
{
    if (!EK__CHECK_TAG(svc, EK__TAG_SERVICE)) return EK_EINVAL;
    size_t len = 0;
    int rc = check_name(name, &len);
    if (rc == EK_OK) rc = ek__rt_check(rt);
    if (rc == EK_OK) {
        /* A taken name is refused before a buffer (and its worker) is made, so
         * that the service is freed here and now; two racing registrations of
         * one name are settled below. */
        reg_lock();
        registry *r = find_registry(rt);
        if (r && *find_entry(r, name)) rc = EK_EEXIST;
        reg_unlock();
    }
    if (rc == EK_OK && !ek__service_shareable(svc)) {
        ek_service *buffered;
        rc = ek_svc_buffer(rt, svc, EK_REGISTRY_BUFFER_BOUND, &buffered); /* consumes svc */
        svc = rc == EK_OK ? buffered : NULL;
    }
    reg_entry *e = rc == EK_OK ? ek__malloc(sizeof *e + len + 1) : NULL;
    if (rc == EK_OK && e == NULL) rc = EK_ENOMEM;
    if (rc != EK_OK) {
        ek_service_free(svc);
        return rc;
    }
    memcpy(e->name, name, len + 1);
    e->svc = svc;
    reg_lock();
    registry *r = find_registry(rt);
    if (r == NULL) {
        r = ek__calloc(1, sizeof *r);
        if (r == NULL) {
            rc = EK_ENOMEM;
        } else {
            r->rt = rt;
            /* On failure the keeper's drop has freed r already. */
            rc = ek_spawn(rt, keeper_poll, keeper_drop, r, NULL, NULL);
            if (rc == EK_OK) {
                r->linked = true;
                r->next = registries;
                registries = r;
            }
        }
    }
    if (rc == EK_OK) {
        reg_entry **p = find_entry(r, name);
        if (*p) {
            rc = EK_EEXIST;
        } else {
            e->next = NULL;
            *p = e;
            e = NULL;
        }
    }
    reg_unlock();
    if (e) {
        e->next = NULL;
        entries_free(e);
    }
    return rc;
}

int ek_registry_lookup(ek_runtime *rt, const char *name, ek_service **out)
{
    size_t len;
    int rc = out ? check_name(name, &len) : EK_EINVAL;
    if (rc == EK_OK) rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    reg_lock();
    registry *r = find_registry(rt);
    reg_entry **p = r ? find_entry(r, name) : NULL;
    rc = p && *p ? ek__service_clone((*p)->svc, out) : EK_ENOENT;
    reg_unlock();
    return rc;
}

int ek_registry_unregister(ek_runtime *rt, const char *name)
{
    size_t len;
    int rc = check_name(name, &len);
    if (rc == EK_OK) rc = ek__rt_check(rt);
    if (rc != EK_OK) return rc;
    reg_lock();
    registry *r = find_registry(rt);
    reg_entry **p = r ? find_entry(r, name) : NULL;
    reg_entry *e = p ? *p : NULL;
    if (e) {
        *p = e->next;
        e->next = NULL;
    }
    reg_unlock();
    if (e == NULL) return EK_ENOENT;
    entries_free(e);
    return EK_OK;
}
