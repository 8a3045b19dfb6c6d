/*
 * ekiden/codec.h - codecs: frame bytes into ek_msg values and back (tokio-util's
 * Decoder/Encoder). Included by ekiden.h (after ekiden/msg.h).
 *
 * A codec is an opaque handle over a vtable, so hosts can write their own. It
 * holds one connection's protocol state (a RESP connection's protocol version
 * after HELLO, an HTTP parser between chunks); ek_codec_clone makes a fresh one
 * with the same configuration, which is how a server gets one per connection.
 *
 * Decoding reads from the connection's ek_buf (ekiden/buf.h): a frame is split off
 * the buffer's front as ek_bytes slices, so byte payloads (a line, a bulk string,
 * an HTTP body) point into the memory the socket read into: no copy between the
 * socket and the service.
 *
 * Results of decode: EK_OK (a frame: *out is a new ek_msg, the caller's; its bytes
 * were consumed from `in`), EK_PENDING (need more bytes; nothing was consumed that
 * matters: call again after appending), or a negative error: the input is corrupt
 * (EK_EPROTO) or a frame is over the codec's limit (EK_EMSGSIZE), with a static
 * text saying why in *reason. After an error the connection's stream cannot be
 * resynchronised: close it (a server first writes the codec's error reply, see
 * encode_error).
 *
 * Threads: a codec is used by one task at a time (it may move between threads).
 * Handles: NULL or a wrong-type handle gives EK_EINVAL; void functions ignore NULL.
 */
#ifndef EKIDEN_CODEC_H
#define EKIDEN_CODEC_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_codec ek_codec;

/* What an encoded message is, for codecs whose state follows the conversation
 * (RESP's HELLO): */
#define EK_CODEC_RESPONSE 0 /* a server's response, in request order */
#define EK_CODEC_REQUEST  1 /* a client's request */
#define EK_CODEC_PUSH     2 /* a frame of a streaming response (RESP3 push, ...) */

/*
 * What a codec implements. `self` is its state.
 * - decode(self, in, out, reason): as described above. Required.
 * - decode_eof(self, in, out, reason): the peer closed its side; `in` holds what
 *   is left. EK_OK with a last frame, EK_ECLOSED when nothing is left, or an
 *   error (EK_EPROTO: a truncated frame). May be NULL: then EK_ECLOSED when `in`
 *   is empty, EK_EPROTO ("bytes remaining on stream") otherwise.
 * - encode(self, m, what, out): append m's wire form to out (m is borrowed).
 *   `what` is EK_CODEC_RESPONSE, _REQUEST or _PUSH. EK_OK, or EK_EKIND (a
 *   message this codec cannot write), EK_EINVAL (a value the format cannot hold,
 *   such as CR in a simple string), EK_ENOMEM. Required.
 * - encode_error(self, err, reason, out): the reply a server writes before it
 *   closes a connection whose input was corrupt (RESP: "-ERR Protocol error:
 *   ...", HTTP: "400 Bad Request"). May be NULL (nothing is written).
 * - fork(self, out): a fresh state with the same configuration (for
 *   ek_codec_clone). May be NULL (the codec cannot be cloned: EK_ENOTSUP).
 * - drop(self): release the state. May be NULL.
 */
typedef struct ek_codec_vtable {
    int (*decode)(void *self, ek_buf *in, ek_msg **out, const char **reason);
    int (*decode_eof)(void *self, ek_buf *in, ek_msg **out, const char **reason);
    int (*encode)(void *self, const ek_msg *m, int what, ek_buf *out);
    int (*encode_error)(void *self, int err, const char *reason, ek_buf *out);
    int (*fork)(void *self, void **out);
    void (*drop)(void *self);
} ek_codec_vtable;

/* A codec over vt (copied) and self. On error vt->drop(self) has run (if vt and
 * drop are not NULL). Errors: EK_EINVAL (NULL vt/out, no decode or encode),
 * EK_ENOMEM. */
EK_EXTERN int ek_codec_new(const ek_codec_vtable *vt, void *self, ek_codec **out);
/* A fresh codec with c's configuration and initial state. Errors: EK_EINVAL,
 * EK_ENOTSUP (no fork), EK_ENOMEM, the fork's error. */
EK_EXTERN int ek_codec_clone(ek_codec *c, ek_codec **out);
/* Release a codec. NULL ignored. */
EK_EXTERN void ek_codec_free(ek_codec *c);

/* The vtable's operations, with argument checks. reason may be NULL; *reason is
 * set on every error (a generic text when the codec gave none).
 * Errors: EK_EINVAL (bad handles), the codec's. */
EK_EXTERN int ek_codec_decode(ek_codec *c, ek_buf *in, ek_msg **out, const char **reason);
EK_EXTERN int ek_codec_decode_eof(ek_codec *c, ek_buf *in, ek_msg **out, const char **reason);
EK_EXTERN int ek_codec_encode(ek_codec *c, const ek_msg *m, int what, ek_buf *out);
/* EK_OK (possibly writing nothing) or the codec's error. */
EK_EXTERN int ek_codec_encode_error(ek_codec *c, int err, const char *reason, ek_buf *out);

/* ---- built-in codecs ---- */

/* The default maximum line length of ek_codec_lines. */
#define EK_LINES_DEFAULT_MAX (64 * 1024)

/*
 * Lines (tokio-util's LinesCodec, with a limit by default): a frame is the bytes
 * before "\n", without a trailing "\r", as an EK_MSG_BYTES message; at end of
 * stream, what is left without a newline is a last frame. encode writes a BYTES
 * message's payload and "\n" (EK_EINVAL if the payload holds "\n").
 * max_len: the longest line (0: EK_LINES_DEFAULT_MAX); longer is EK_EMSGSIZE
 * ("line longer than the maximum"). Errors: EK_EINVAL (NULL out), EK_ENOMEM.
 */
EK_EXTERN int ek_codec_lines(size_t max_len, ek_codec **out);

/* The defaults of ek_codec_length_delimited, as tokio-util's. */
#define EK_LENGTH_DEFAULT_FIELD_LEN 4
#define EK_LENGTH_DEFAULT_MAX       (8 * 1024 * 1024)
#define EK_LENGTH_SKIP_DEFAULT      SIZE_MAX

/*
 * Length-delimited frames (tokio-util's LengthDelimitedCodec): a header holding a
 * length field, then the frame. Options (tokio-util's names):
 * - field_offset: bytes before the length field (0);
 * - field_len: 1, 2, 3, 4 or 8 bytes (4);
 * - adjustment: added to the field's value to get the bytes that follow the field
 *   (0; negative when the length counts the header);
 * - num_skip: header bytes dropped from the frame (EK_LENGTH_SKIP_DEFAULT:
 *   field_offset + field_len, i.e. the whole header);
 * - little_endian: 0 big-endian (network order, the default), 1 little-endian;
 * - max_frame: the largest frame (0: EK_LENGTH_DEFAULT_MAX); over it EK_EMSGSIZE
 *   ("frame size too big"), as is a length that underflows with the adjustment.
 * A frame is an EK_MSG_BYTES message. encode writes the header for a BYTES payload
 * (field_offset zero bytes, the length minus adjustment) and the payload;
 * EK_EMSGSIZE if it is over max_frame or does not fit the field.
 * At end of stream a partial frame is EK_EPROTO ("bytes remaining on stream").
 * Errors: EK_EINVAL (bad field_len, num_skip beyond the header), EK_ENOMEM.
 */
EK_EXTERN int ek_codec_length_delimited(size_t field_offset, size_t field_len, int64_t adjustment,
                                        size_t num_skip, int little_endian, size_t max_frame,
                                        ek_codec **out);

/*
 * RESP (redis's protocol), both sides:
 * - the server side decodes what redis-server accepts from clients: a multibulk of
 *   bulk strings, or an inline command ("PING\r\n", quotes and escapes as
 *   redis-cli's), as a RESP ARRAY of BULK strings (slices of the read buffer;
 *   inline arguments are copies); an empty line or "*0" is skipped. Corrupt input
 *   gives EK_EPROTO with redis's own text ("Protocol error: invalid multibulk
 *   length", ...), and encode_error writes "-ERR <text>\r\n" as redis does.
 *   Limits: an inline line or a count line over 64 KiB, a bulk over 512 MiB.
 *   It encodes responses in RESP2 until a HELLO 3 request is answered without
 *   an error (HELLO 2 switches back): the codec notes each HELLO it decodes and
 *   applies it when the response to that request is encoded (responses are
 *   encoded in request order, EK_CODEC_RESPONSE). In RESP2, RESP3 types are
 *   written as redis writes them: map/set/push as arrays, null as $-1 (or *-1 for
 *   a null array), double and big number as bulk strings, boolean as 1/0.
 * - the client side (ek_codec_resp_client) decodes any RESP2/RESP3 value (strict;
 *   nesting up to 128; attributes attached to the value they precede) and encodes
 *   requests: a RESP ARRAY of string values is written as a multibulk of bulk
 *   strings. `protocol` 2 or 3 says how it writes RESP3 types if asked to.
 * Errors: EK_EINVAL (NULL out, protocol not 2 or 3), EK_ENOMEM.
 */
EK_EXTERN int ek_codec_resp_server(ek_codec **out);
EK_EXTERN int ek_codec_resp_client(int protocol, ek_codec **out);
/* The protocol version (2 or 3) a RESP codec currently writes; EK_EINVAL for
 * another codec. */
EK_EXTERN int ek_codec_resp_protocol(ek_codec *c);

/* ---- HTTP/1.x (on llhttp) ---- */

/* The defaults of the HTTP codecs: the largest head (request or status line and
 * headers) and the largest body. */
#define EK_HTTP_DEFAULT_MAX_HEADER (80 * 1024)
#define EK_HTTP_DEFAULT_MAX_BODY   (8 * 1024 * 1024)
/* Flags of ek_codec_http_server: */
#define EK_HTTP_DATE 1 /* write a Date header (RFC 9110 IMF-fixdate) in each response */

/*
 * HTTP/1.1 and 1.0, the server side: decodes requests, encodes responses. The
 * parser is llhttp (Node.js's), strict mode.
 * - Decode: an EK_MSG_HTTP_REQUEST per request (method, target, version 10 or 11,
 *   headers in order, keep-alive as the version and Connection header say), once
 *   its body is whole: a Content-Length body is a slice of the read buffer (no
 *   copy); a chunked body is joined into one ek_bytes (trailers are dropped).
 *   Pipelined requests are decoded one after another. After a request that does
 *   not keep the connection alive (HTTP/1.0 without "Connection: keep-alive",
 *   "Connection: close") decode gives EK_ECLOSED: the framed server answers what
 *   it has and closes.
 * - Upgrade is ignored, as RFC 9110 7.8 allows: such a request is decoded as any
 *   other (its Upgrade and Connection headers are in it), the connection stays
 *   HTTP/1.1 and what follows it is the next request; a 101 response cannot be
 *   encoded (EK_ENOTSUP: the connection is never handed over). CONNECT (a
 *   tunnel) is EK_EPROTO "CONNECT is not supported" (encode_error writes 501 Not
 *   Implemented, and the connection closes).
 * - "Expect: 100-continue" (HTTP/1.1): the framed server writes "HTTP/1.1 100
 *   Continue" once the responses before the request are written, while it waits
 *   for the body.
 * - Errors: a head over max_header bytes is EK_EMSGSIZE ("request header too
 *   large"; encode_error writes 431 Request Header Fields Too Large), a body over
 *   max_body EK_EMSGSIZE ("request body too large"; 413 Content Too Large), any
 *   malformed request (a bad chunk size, a bad header, two Content-Lengths, an
 *   HTTP version other than 1.0 and 1.1, ...) EK_EPROTO with llhttp's reason (400
 *   Bad Request). Every error reply says "Connection: close", and the server
 *   closes after it. At end of stream a partial request is EK_EPROTO.
 * - Encode (EK_CODEC_RESPONSE): an EK_MSG_HTTP_RESPONSE, for the oldest request
 *   not answered yet (responses are encoded in request order, as the framed
 *   server does): the status line in the request's version (a 1.0 request gets
 *   "HTTP/1.0"), the message's headers in order, except Content-Length,
 *   Transfer-Encoding and Connection, which the codec writes itself:
 *   "Content-Length: <body length>" (none for 1xx, 204 and 304; a response to
 *   HEAD gets the length but not the body, or keeps its own Content-Length
 *   header when its body is empty), and "Connection: close" when the request or
 *   the response (ek_msg_http_set_keep_alive 0, or its own "Connection: close"
 *   header) ends the connection ("Connection: keep-alive" for a 1.0 request that
 *   keeps it). After a response that closes, decode gives EK_ECLOSED and later
 *   responses are not written.
 * - Streaming responses (an EK_MSG_STREAM response, ekiden/msg.h): the first frame
 *   is the head, an EK_MSG_HTTP_RESPONSE (its body, if not empty, is the first
 *   chunk), each later frame an EK_MSG_BYTES chunk (empty ones are skipped); the
 *   end of the stream (the producer dropped its sender) ends the body. The body is
 *   written with "Transfer-Encoding: chunked" (to a 1.0 request: as it comes,
 *   and the connection closes at its end). Responses to later requests wait for
 *   the stream to end (HTTP has no push).
 * - A response for a request that was never decoded (encode called more often
 *   than decode) is EK_EINVAL; a message of another kind EK_EKIND.
 * max_header, max_body: 0 for the defaults. flags: 0 or EK_HTTP_DATE.
 * Errors: EK_EINVAL (NULL out, unknown flags), EK_ENOMEM.
 */
EK_EXTERN int ek_codec_http_server(size_t max_header, size_t max_body, int flags, ek_codec **out);

/*
 * HTTP/1.1, the client side (for ek_client_connect): encodes requests, decodes
 * responses in order.
 * - Encode (EK_CODEC_REQUEST): an EK_MSG_HTTP_REQUEST: the request line, its
 *   headers (Content-Length, Transfer-Encoding and Connection as for the server:
 *   the codec writes "Content-Length" when the body is not empty or the method is
 *   POST, PUT or PATCH, and "Connection: close" when the request's keep-alive is
 *   0), then the body. No Host header is added: set it.
 * - Streaming requests (an EK_MSG_STREAM request through ek_client_connect): the
 *   first frame is the head, an EK_MSG_HTTP_REQUEST (its body, if not empty, is
 *   the first chunk), each later frame an EK_MSG_BYTES chunk (empty ones are
 *   skipped), and the end of the stream ends the body: written with
 *   "Transfer-Encoding: chunked" as the frames come (no Content-Length). An
 *   HTTP/1.0 head is EK_ENOTSUP (1.0 has no chunked body), a stream that ends
 *   without a head EK_EINVAL. Requests after it wait for its end.
 * - Decode: an EK_MSG_HTTP_RESPONSE per request, with its body (Content-Length,
 *   chunked, or up to the end of the stream when the response has neither);
 *   interim 1xx responses (100 Continue) are skipped; the response to HEAD has no
 *   body. A response when no request is waiting is EK_EPROTO ("unexpected
 *   response"), as is anything malformed; limits as the server's (EK_EMSGSIZE).
 *   After a response that closes the connection, decode gives EK_ECLOSED.
 * max_header, max_body: 0 for the defaults; flags: 0.
 * Errors: EK_EINVAL (NULL out, unknown flags), EK_ENOMEM.
 */
EK_EXTERN int ek_codec_http_client(size_t max_header, size_t max_body, int flags, ek_codec **out);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_CODEC_H */
