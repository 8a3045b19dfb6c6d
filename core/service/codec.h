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

/*
 * What the framed server asks of the built-in codecs beyond the public vtable
 * (hosts' codecs have none of it). Each may be NULL.
 * - interim(self, out): bytes to write while the server waits for more input of
 *   the request being decoded, called only when every earlier response is
 *   written (HTTP's "100 Continue").
 * - stream_begin / stream_end: with them, a streaming response answers in order
 *   and holds the responses after it until it ends: its first frame is written
 *   with stream_begin, later frames with encode(EK_CODEC_PUSH), and its end with
 *   stream_end (HTTP's chunked body). Without them a stream becomes the
 *   connection's push stream after its first frame (RESP).
 *
 * What the framed client asks of them (RESP's client side: push frames):
 * - client_request(self, req, out): encode a request for the framed client, which
 *   calls nothing else to encode requests; an error fails that request alone
 *   (nothing written). The codec notes what will answer it.
 * - client_frame(self, frame): what a decoded frame is (EK__FRAME_*): the answer to
 *   the oldest request not yet answered, an out-of-band push frame, or a push
 *   frame that is also that answer (a RESP3 SUBSCRIBE's confirmation).
 */
typedef struct ek__codec_ext {
    int (*interim)(void *self, ek_buf *out);
    int (*stream_begin)(void *self, const ek_msg *head, ek_buf *out);
    int (*stream_end)(void *self, ek_buf *out);
    int (*client_request)(void *self, const ek_msg *req, ek_buf *out);
    int (*client_frame)(void *self, const ek_msg *frame);
} ek__codec_ext;

#define EK__FRAME_REPLY      0
#define EK__FRAME_PUSH       1
#define EK__FRAME_PUSH_REPLY 2

/* ek_codec_new with the extension (static; may be NULL), kept by clones. */
int ek__codec_new_ext(const ek_codec_vtable *vt, const ek__codec_ext *ext, void *self,
                      ek_codec **out);
/* The codec's extension (NULL if none or a bad handle); *self its state. */
const ek__codec_ext *ek__codec_ext_of(ek_codec *c, void **self);

#endif
