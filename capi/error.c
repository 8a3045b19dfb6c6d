/* error.c - the error table's functions and the version. */
#include "common.h"

#define EK__STR2(x) #x
#define EK__STR(x)  EK__STR2(x)

unsigned ek_version(void)
{
    return EK_VERSION_HEX;
}

const char *ek_version_string(void)
{
    return EK__STR(EK_VERSION_MAJOR) "." EK__STR(EK_VERSION_MINOR) "." EK__STR(EK_VERSION_PATCH);
}

const char *ek_strerror(int err)
{
    switch (err) {
    case EK_OK:
        return "success";
    case EK_PENDING:
        return "operation pending";
#define EK__ERR_MSG(name, value, msg)                                                              \
    case EK_##name:                                                                                \
        return msg;
        EK_ERRNO_MAP(EK__ERR_MSG)
#undef EK__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *ek_err_name(int err)
{
    switch (err) {
    case EK_OK:
        return "OK";
    case EK_PENDING:
        return "PENDING";
#define EK__ERR_NAME(name, value, msg)                                                             \
    case EK_##name:                                                                                \
        return #name;
        EK_ERRNO_MAP(EK__ERR_NAME)
#undef EK__ERR_NAME
    default:
        return "UNKNOWN";
    }
}

const char *ek_metric_name(int key)
{
    switch (key) {
#define EK__METRIC_NAME(name, doc)                                                                 \
    case EK_METRIC_##name:                                                                         \
        return #name;
        EK_METRICS_MAP(EK__METRIC_NAME)
#undef EK__METRIC_NAME
    default:
        return NULL;
    }
}

/* Every status code, in the order ek_err_code reports them. */
static const int ek__codes[] = {EK_OK, EK_PENDING,
#define EK__ERR_CODE(name, value, msg) EK_##name,
                                EK_ERRNO_MAP(EK__ERR_CODE)
#undef EK__ERR_CODE
};

int ek_err_count(void)
{
    return (int)(sizeof ek__codes / sizeof ek__codes[0]);
}

int ek_err_code(int i)
{
    if (i < 0 || i >= ek_err_count()) return EK_EINVAL;
    return ek__codes[i];
}
