/*
 * net.c - TCP, UDP, Unix sockets, name resolution.
 */
#include "ekl.h"

void ekl_net_open(lua_State *L, ekl_ctx *c)
{
    (void)L;
    (void)c;
}
