/*
 * codec.h - internals shared by the codecs (codec.c, codec_resp.c, codec_http.c)
 * and the framed server and client.
 */
#ifndef EK_CORE_SERVICE_CODEC_H
#define EK_CORE_SERVICE_CODEC_H

#include "../common.h"

/* The state of a codec made with vtable vt (matched by its decode function), or
 * NULL for a bad handle or another codec. */
void *ek__codec_self(ek_codec *c, const ek_codec_vtable *vt);

/* EK_OK for a codec that can be cloned, EK_ENOTSUP for one that cannot,
 * EK_EINVAL for a bad handle. */
int ek__codec_check(ek_codec *c);

#endif
