/*
 * sockaddr.c - ek_sockaddr: an opaque socket address that FFI hosts build from
 * and format to text, so that no caller needs struct sockaddr's layout.
 *
 * Text forms (parse and format agree):
 *   IPv4  "1.2.3.4:80"
 *   IPv6  "[::1]:80", with an optional scope "[fe80::1%eth0]:80" (name or index)
 *   Unix  "/abs/path", "unix:relative/path", "@abstract" (Linux), "" unnamed
 */
#include "sock.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

int ek__sockaddr_assign(ek_sockaddr *a, const void *sa, socklen_t len)
{
    if (len > sizeof a->ss) return EK_EINVAL;
    memset(&a->ss, 0, sizeof a->ss);
    memcpy(&a->ss, sa, len);
    a->len = len;
    return EK_OK;
}

int ek__sockaddr_check_ip(const ek_sockaddr *a)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR)) return EK_EINVAL;
    if (a->len == 0) return EK_EINVAL;
    return a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6 ? EK_OK : EK_EINVAL;
}

int ek__sockaddr_check_unix(const ek_sockaddr *a)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR)) return EK_EINVAL;
    if (a->ss.ss_family != AF_UNIX) return EK_EINVAL;
    return a->len > offsetof(struct sockaddr_un, sun_path) ? EK_OK : EK_EINVAL;
}

int ek__sockaddr_unix(struct sockaddr_un *sun, socklen_t *len, const char *path)
{
    if (path == NULL || path[0] == '\0') return EK_EINVAL;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (path[0] == '@') {
        if (n == 1) return EK_EINVAL; /* an empty abstract name */
        /* Abstract: a leading NUL, then the name; the length bounds it (no
         * terminating NUL is part of the name). */
        if (n > sizeof sun->sun_path) return EK_ENAMETOOLONG;
        memcpy(sun->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return EK_OK;
    }
    if (n >= sizeof sun->sun_path) return EK_ENAMETOOLONG;
    memcpy(sun->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return EK_OK;
}

/* "80" -> 80; EK_EINVAL unless 1..5 digits <= 65535. */
static int ek__parse_port(const char *s, uint16_t *port)
{
    if (*s == '\0' || strlen(s) > 5) return EK_EINVAL;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return EK_EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535) return EK_EINVAL;
    *port = (uint16_t)v;
    return EK_OK;
}

/* A scope: an interface index (decimal digits only, 1..UINT32_MAX: no sign, no
 * wrap-around) or an interface name. EK_EINVAL for anything else. */
static int ek__parse_scope(const char *scope, uint32_t *idx)
{
    if (*scope >= '0' && *scope <= '9') {
        uint64_t v = 0;
        for (const char *p = scope; *p; p++) {
            if (*p < '0' || *p > '9') return EK_EINVAL;
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > UINT32_MAX) return EK_EINVAL;
        }
        if (v == 0) return EK_EINVAL;
        *idx = (uint32_t)v;
        return EK_OK;
    }
    unsigned n = if_nametoindex(scope);
    if (n == 0) return EK_EINVAL;
    *idx = n;
    return EK_OK;
}

/* An IPv6 address text with an optional "%scope" into sin6 (port untouched). */
static int ek__parse_ip6(const char *text, struct sockaddr_in6 *sin6)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    if (strlen(text) >= sizeof host) return EK_EINVAL;
    strcpy(host, text);
    char *scope = strchr(host, '%');
    if (scope != NULL) *scope++ = '\0';
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) return EK_EINVAL;
    if (scope != NULL) {
        uint32_t idx;
        int rc = ek__parse_scope(scope, &idx);
        if (rc != EK_OK) return rc;
        sin6->sin6_scope_id = idx;
    }
    return EK_OK;
}

/* IP text without port into ss. */
static int ek__parse_ip(const char *ip, uint16_t port, ek_sockaddr *a)
{
    memset(&a->ss, 0, sizeof a->ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        a->len = sizeof *sin;
        return EK_OK;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
    if (ek__parse_ip6(ip, sin6) == EK_OK) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        a->len = sizeof *sin6;
        return EK_OK;
    }
    a->len = 0;
    return EK_EINVAL;
}

static int ek__sockaddr_parse_into(ek_sockaddr *a, const char *text)
{
    if (text == NULL) return EK_EINVAL;
    if (text[0] == '/' || text[0] == '@' || strncmp(text, "unix:", 5) == 0) {
        const char *path = strncmp(text, "unix:", 5) == 0 ? text + 5 : text;
        struct sockaddr_un sun;
        socklen_t len;
        int rc = ek__sockaddr_unix(&sun, &len, path);
        if (rc != EK_OK) return rc;
        return ek__sockaddr_assign(a, &sun, len);
    }
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    const char *port_text;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') return EK_EINVAL;
        size_t n = (size_t)(close - text - 1);
        if (n >= sizeof host) return EK_EINVAL;
        memcpy(host, text + 1, n);
        host[n] = '\0';
        if (strchr(host, ':') == NULL) return EK_EINVAL; /* brackets are for IPv6 */
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
            return EK_EINVAL; /* no port, or an unbracketed IPv6 address */
        size_t n = (size_t)(colon - text);
        if (n >= sizeof host) return EK_EINVAL;
        memcpy(host, text, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, &(struct in_addr){0}) != 1) return EK_EINVAL;
        port_text = colon + 1;
    }
    uint16_t port;
    int rc = ek__parse_port(port_text, &port);
    if (rc != EK_OK) return rc;
    return ek__parse_ip(host, port, a);
}

int ek_sockaddr_new(ek_sockaddr **out)
{
    if (out == NULL) return EK_EINVAL;
    ek_sockaddr *a = ek__calloc(1, sizeof *a);
    if (a == NULL) return EK_ENOMEM;
    a->tag = EK__TAG_SOCKADDR;
    *out = a;
    return EK_OK;
}

int ek_sockaddr_set(ek_sockaddr *a, const char *text)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR)) return EK_EINVAL;
    ek_sockaddr tmp = {.tag = EK__TAG_SOCKADDR};
    int rc = ek__sockaddr_parse_into(&tmp, text);
    if (rc == EK_OK) *a = tmp; /* a is unchanged on failure */
    return rc;
}

int ek_sockaddr_parse(const char *text, ek_sockaddr **out)
{
    if (out == NULL) return EK_EINVAL;
    ek_sockaddr tmp = {.tag = EK__TAG_SOCKADDR};
    int rc = ek__sockaddr_parse_into(&tmp, text);
    if (rc != EK_OK) return rc;
    rc = ek_sockaddr_new(out);
    if (rc == EK_OK) **out = tmp;
    return rc;
}

int ek_sockaddr_from_ip(const char *ip, uint16_t port, ek_sockaddr **out)
{
    if (ip == NULL || out == NULL) return EK_EINVAL;
    ek_sockaddr tmp = {.tag = EK__TAG_SOCKADDR};
    int rc = ek__parse_ip(ip, port, &tmp);
    if (rc != EK_OK) return rc;
    rc = ek_sockaddr_new(out);
    if (rc == EK_OK) **out = tmp;
    return rc;
}

int ek_sockaddr_copy(const ek_sockaddr *a, ek_sockaddr **out)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR) || out == NULL) return EK_EINVAL;
    int rc = ek_sockaddr_new(out);
    if (rc == EK_OK) **out = *a;
    return rc;
}

void ek_sockaddr_free(ek_sockaddr *a)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR)) return;
    a->tag = EK__TAG_DEAD;
    ek__free(a);
}

static int ek__format_unix(const ek_sockaddr *a, char *buf, size_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = a->len > off ? a->len - off : 0; /* 0: unnamed */
    const char *p = sun->sun_path;
    size_t out = 0;
    if (n > 0 && p[0] == '\0') {
        /* Abstract: '@' stands for the leading NUL; the name is all n-1 bytes. */
        if (n >= len) return EK_ERANGE;
        buf[0] = '@';
        memcpy(buf + 1, p + 1, n - 1);
        out = n;
    } else {
        size_t plen = strnlen(p, n);
        if (plen > 0 && p[0] != '/') {
            /* relative path: keep the prefix that makes it parse back as Unix */
            if (plen + 5 >= len) return EK_ERANGE;
            memcpy(buf, "unix:", 5);
            memcpy(buf + 5, p, plen);
            out = plen + 5;
        } else {
            if (plen >= len) return EK_ERANGE;
            memcpy(buf, p, plen);
            out = plen;
        }
    }
    buf[out] = '\0';
    return (int)out;
}

int ek_sockaddr_format(const ek_sockaddr *a, char *buf, size_t len)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR) || buf == NULL) return EK_EINVAL;
    if (len == 0) return EK_ERANGE;
    char tmp[EK_SOCKADDR_STRLEN];
    int n;
    if (a->len == 0) {
        n = snprintf(tmp, sizeof tmp, "%s", "");
    } else if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        n = snprintf(tmp, sizeof tmp, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        char scope[IF_NAMESIZE + 12] = "";
        if (sin6->sin6_scope_id != 0) {
            char name[IF_NAMESIZE];
            if (if_indextoname(sin6->sin6_scope_id, name) != NULL)
                snprintf(scope, sizeof scope, "%%%s", name);
            else
                snprintf(scope, sizeof scope, "%%%u", (unsigned)sin6->sin6_scope_id);
        }
        n = snprintf(tmp, sizeof tmp, "[%s%s]:%u", ip, scope, (unsigned)ntohs(sin6->sin6_port));
    } else if (a->ss.ss_family == AF_UNIX) {
        return ek__format_unix(a, buf, len);
    } else {
        return EK_EINVAL;
    }
    if (n < 0 || (size_t)n >= len) return EK_ERANGE;
    memcpy(buf, tmp, (size_t)n + 1);
    return n;
}

int ek_sockaddr_family(const ek_sockaddr *a)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR)) return EK_EINVAL;
    if (a->len == 0) return EK_AF_UNSPEC;
    switch (a->ss.ss_family) {
    case AF_INET:
        return EK_AF_INET;
    case AF_INET6:
        return EK_AF_INET6;
    case AF_UNIX:
        return EK_AF_UNIX;
    default:
        return EK_AF_UNSPEC;
    }
}

int ek_sockaddr_port(const ek_sockaddr *a)
{
    if (ek__sockaddr_check_ip(a) != EK_OK) return EK_EINVAL;
    if (a->ss.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

int ek_sockaddr_set_port(ek_sockaddr *a, uint16_t port)
{
    if (ek__sockaddr_check_ip(a) != EK_OK) return EK_EINVAL;
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
    return EK_OK;
}

int ek_sockaddr_equal(const ek_sockaddr *a, const ek_sockaddr *b)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR) || !EK__CHECK_TAG(b, EK__TAG_SOCKADDR))
        return EK_EINVAL;
    /* Addresses are zero-filled beyond len (assign, parse), so bytes compare. */
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

int ek_sockaddr_to_native(const ek_sockaddr *a, void *sa, size_t *len)
{
    if (!EK__CHECK_TAG(a, EK__TAG_SOCKADDR) || sa == NULL || len == NULL) return EK_EINVAL;
    if (a->len == 0) return EK_EINVAL;
    if (*len < a->len) return EK_ERANGE;
    memcpy(sa, &a->ss, a->len);
    *len = a->len;
    return EK_OK;
}

int ek_sockaddr_from_native(const void *sa, size_t len, ek_sockaddr **out)
{
    if (sa == NULL || out == NULL || len < sizeof(sa_family_t) ||
        len > sizeof(struct sockaddr_storage))
        return EK_EINVAL;
    int fam = ((const struct sockaddr *)sa)->sa_family;
    /* A Unix address longer than struct sockaddr_un is no address the kernel
     * would give or take (and would not format into EK_SOCKADDR_STRLEN). */
    if ((fam == AF_INET && len < sizeof(struct sockaddr_in)) ||
        (fam == AF_INET6 && len < sizeof(struct sockaddr_in6)) ||
        (fam == AF_UNIX && len > sizeof(struct sockaddr_un)) ||
        (fam != AF_INET && fam != AF_INET6 && fam != AF_UNIX))
        return EK_EINVAL;
    int rc = ek_sockaddr_new(out);
    if (rc != EK_OK) return rc;
    return ek__sockaddr_assign(*out, sa, (socklen_t)len);
}
