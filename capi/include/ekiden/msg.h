/*
 * ekiden/msg.h - ek_msg, the requests and responses of services. Included by
 * ekiden.h (after ekiden/buf.h and ekiden/sync.h).
 *
 * An ek_msg is an owned, typed message, read and built only through functions (no
 * struct layout), so that cffi, Lua and any FFI host reach every field. Kinds:
 *
 *   EK_MSG_BYTES          a byte payload (a line, a length-delimited frame): an
 *                         ek_bytes slice, usually of the connection's read buffer
 *   EK_MSG_RESP           a RESP2/RESP3 value (EK_RESP_* types below)
 *   EK_MSG_HTTP_REQUEST   method, target, version, headers, body, keep-alive
 *   EK_MSG_HTTP_RESPONSE  status, reason, version, headers, body, keep-alive
 *   EK_MSG_HOST           an opaque host object (a Python or Lua value) with its
 *                         clone and drop functions
 *   EK_MSG_STREAM         a stream of messages (a response that is a sequence of
 *                         frames, as redis SUBSCRIBE replies): see below
 *
 * Ownership: a constructor's *out is the caller's, released with ek_msg_free or
 * handed on (ek_service_call consumes its request). Functions that add a child,
 * a body or an ek_bytes payload consume it, even on error. Accessors borrow:
 * what they give (a pointer, an ek_bytes, a child) stays valid until the message
 * is changed or freed; ek_bytes_clone keeps a payload longer.
 * Threads: a message is used by one thread at a time and may move between
 * threads (a request travels to a service's worker, a response back).
 * Errors: NULL or a handle of another type gives EK_EINVAL; an accessor of
 * another kind or RESP type (a RESP accessor on an HTTP message, the integer of a
 * bulk string) gives EK_EKIND; the data of a null value gives EK_EEMPTY.
 */
#ifndef EKIDEN_MSG_H
#define EKIDEN_MSG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_msg ek_msg;

#define EK_MSG_BYTES         1
#define EK_MSG_RESP          2
#define EK_MSG_HTTP_REQUEST  3
#define EK_MSG_HTTP_RESPONSE 4
#define EK_MSG_HOST          5
#define EK_MSG_STREAM        6

/* The message's kind (EK_MSG_*), or EK_EINVAL. */
EK_EXTERN int ek_msg_kind(const ek_msg *m);

/*
 * A deep copy (what retry needs to send a request again). Byte payloads are
 * shared, not copied (ek_bytes are immutable); a host object goes through its
 * clone function. Errors: EK_EINVAL, EK_ENOMEM, EK_ENOTSUP (a host object
 * without a clone function, a stream), or the host clone function's error.
 */
EK_EXTERN int ek_msg_clone(const ek_msg *m, ek_msg **out);

/* Free the message and everything it owns (children, payloads, host object).
 * NULL ignored. */
EK_EXTERN void ek_msg_free(ek_msg *m);

/*
 * The byte payload of a message, borrowed: BYTES' payload, the content of a RESP
 * string type (simple, error, bulk, bulk error, verbatim without its format,
 * big number), an HTTP body (an empty slice if none was set).
 * ek_msg_payload gives the ek_bytes (ek_bytes_clone it to keep it); ek_msg_data gives a
 * pointer and length (data and len may be NULL).
 * Errors: EK_EINVAL, EK_EKIND (no payload in this kind or type), EK_EEMPTY (a
 * null bulk string).
 */
EK_EXTERN int ek_msg_payload(const ek_msg *m, ek_bytes **out);
EK_EXTERN int ek_msg_data(const ek_msg *m, const uint8_t **data, size_t *len);

/* ---- BYTES ---- */

/* A BYTES message over `payload` (consumed, even on error).
 * Errors: EK_EINVAL, EK_ENOMEM. */
EK_EXTERN int ek_msg_bytes_new(ek_bytes *payload, ek_msg **out);
/* A BYTES message holding a copy of data[0..len). Errors: EK_EINVAL, EK_ERANGE,
 * EK_ENOMEM. */
EK_EXTERN int ek_msg_bytes_copy(const void *data, size_t len, ek_msg **out);

/* ---- RESP (RESP2 and RESP3) ---- */

/* RESP types: the value is the type's first byte on the wire. */
#define EK_RESP_SIMPLE     '+' /* simple string */
#define EK_RESP_ERROR      '-' /* simple error */
#define EK_RESP_INTEGER    ':'
#define EK_RESP_BULK       '$' /* bulk string; nullable (RESP2 $-1) */
#define EK_RESP_ARRAY      '*' /* nullable (RESP2 *-1) */
#define EK_RESP_NULL       '_' /* RESP3 null */
#define EK_RESP_BOOLEAN    '#'
#define EK_RESP_DOUBLE     ','
#define EK_RESP_BIG_NUMBER '('
#define EK_RESP_BULK_ERROR '!'
#define EK_RESP_VERBATIM   '=' /* verbatim string with a 3-byte format ("txt") */
#define EK_RESP_MAP        '%' /* children: key, value, key, value, ... */
#define EK_RESP_SET        '~'
#define EK_RESP_ATTRIBUTE  '|' /* children as a map */
#define EK_RESP_PUSH       '>'

/* The RESP type (EK_RESP_*), or EK_EINVAL, EK_EKIND (not a RESP message). */
EK_EXTERN int ek_msg_resp_type(const ek_msg *m);
/*
 * Parse `len` bytes as a RESP/redis integer (redis's string2ll: optional '-', no
 * '+', no leading zeros, no "-0", no spaces, fits in int64), e.g. an INCRBY
 * argument or an EXPIRE time. Any thread; no allocation.
 * Errors: EK_EINVAL (NULL data with len > 0, NULL out, or not such an integer;
 * *out is then untouched).
 */
EK_EXTERN int ek_resp_parse_int(const void *data, size_t len, int64_t *out);

/*
 * A string-type value (SIMPLE, ERROR, BULK, BULK_ERROR, BIG_NUMBER) holding a copy
 * of data[0..len) (data may be NULL when len is 0). No check of the content is
 * made here (a simple string with CR or LF is the encoder's to refuse).
 * Errors: EK_EINVAL (NULL out, not a string type), EK_ERANGE, EK_ENOMEM.
 */
EK_EXTERN int ek_msg_resp_string(int type, const void *data, size_t len, ek_msg **out);
/* The same over an ek_bytes (consumed, even on error): no copy, which is how a
 * decoder hands out bulk strings of the read buffer. */
EK_EXTERN int ek_msg_resp_string_bytes(int type, ek_bytes *payload, ek_msg **out);
/* A verbatim string: `format` is 3 bytes ("txt", "mkd"), then the text.
 * Errors: EK_EINVAL (NULL format/out), EK_ERANGE, EK_ENOMEM. */
EK_EXTERN int ek_msg_resp_verbatim(const char *format, const void *data, size_t len, ek_msg **out);
/* The format of a verbatim string: 3 bytes and a NUL into fmt[4].
 * Errors: EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_resp_verbatim_format(const ek_msg *m, char fmt[4]);

/* An integer, a double, a boolean (any non-zero is true).
 * Errors: EK_EINVAL (NULL out), EK_ENOMEM. */
EK_EXTERN int ek_msg_resp_integer(int64_t value, ek_msg **out);
EK_EXTERN int ek_msg_resp_double(double value, ek_msg **out);
EK_EXTERN int ek_msg_resp_boolean(int value, ek_msg **out);
/* Read them. Errors: EK_EINVAL, EK_EKIND (another kind or type). */
EK_EXTERN int ek_msg_resp_get_integer(const ek_msg *m, int64_t *value);
EK_EXTERN int ek_msg_resp_get_double(const ek_msg *m, double *value);
EK_EXTERN int ek_msg_resp_get_boolean(const ek_msg *m, int *value);

/* A null: type EK_RESP_NULL (RESP3 `_`), EK_RESP_BULK (RESP2 `$-1`) or
 * EK_RESP_ARRAY (RESP2 `*-1`). Errors: EK_EINVAL (another type), EK_ENOMEM. */
EK_EXTERN int ek_msg_resp_null(int type, ek_msg **out);
/* 1 if the value is a null (of any of the three), 0 if not; EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_resp_is_null(const ek_msg *m);

/* An empty aggregate: ARRAY, SET, PUSH, MAP or ATTRIBUTE, with room for
 * `capacity` children (a hint). Errors: EK_EINVAL (another type), EK_ENOMEM. */
EK_EXTERN int ek_msg_resp_aggregate(int type, size_t capacity, ek_msg **out);
/* Append a child (consumed, even on error; must be a RESP message). For MAP and
 * ATTRIBUTE, append key then value. Errors: EK_EINVAL (a bad handle, a child that
 * is not RESP, or agg itself), EK_EKIND (agg is not an aggregate, or is a null
 * array), EK_EPERM (agg is a shared reply), EK_ENOMEM. */
EK_EXTERN int ek_msg_resp_append(ek_msg *agg, ek_msg *child);
/* Number of children (for MAP and ATTRIBUTE: keys plus values, so pairs * 2), or
 * EK_EINVAL, EK_EKIND (not an aggregate), EK_EEMPTY (a null array). */
EK_EXTERN int64_t ek_msg_resp_len(const ek_msg *m);
/* Child i, borrowed. Errors: EK_EINVAL, EK_EKIND, EK_EEMPTY (null array),
 * EK_ERANGE (i >= length), EK_ENOMEM (a flat request's children are made at the
 * first call: see ek_msg_resp_arg). */
EK_EXTERN int ek_msg_resp_child(const ek_msg *m, size_t i, ek_msg **out);
/* Remove child i and hand it to the caller (the later ones move up): how a
 * service takes a request's arguments without copying. Same errors, and
 * EK_EPERM for a shared reply. */
EK_EXTERN int ek_msg_resp_take(ek_msg *m, size_t i, ek_msg **out);

/*
 * The bytes of argument i of an array of strings (a request: the command name is
 * argument 0), borrowed until the message is changed or freed. The RESP server
 * codec decodes a request as a flat array (one allocation: the arguments are
 * slices of the read buffer, with no ek_msg per argument); this reads it without
 * making the child messages that ek_msg_resp_child would (on the first call it
 * turns a flat request into an ordinary aggregate, which costs a message and a
 * slice per argument). Any array of strings works the same. No allocation.
 * Errors: EK_EINVAL, EK_EKIND (not an aggregate, or child i not a string type),
 * EK_EEMPTY (a null array or a null child), EK_ERANGE (i >= length).
 */
EK_EXTERN int ek_msg_resp_arg(const ek_msg *m, size_t i, const uint8_t **data, size_t *len);
/* The RESP type of element i of an aggregate (EK_RESP_BULK for each argument of
 * a flat request), without making the child messages ek_msg_resp_child would:
 * what a host needs to read a request through ek_msg_resp_arg and still tell a
 * simple string or an error from a bulk string elsewhere. No allocation.
 * Errors: EK_EINVAL, EK_EKIND (not an aggregate), EK_EEMPTY (a null array),
 * EK_ERANGE (i >= length). */
EK_EXTERN int ek_msg_resp_arg_type(const ek_msg *m, size_t i);
/* The same as an ek_bytes of the caller's (release it): a new slice of the read
 * buffer, not a copy (an inline command's argument is copied), to keep an
 * argument beyond the message. Errors: as ek_msg_resp_arg, and EK_ENOMEM. */
EK_EXTERN int ek_msg_resp_arg_bytes(const ek_msg *m, size_t i, ek_bytes **out);

/*
 * Shared replies: static, immutable messages that cost no allocation, for the
 * replies a server sends most (redis's shared objects). ek_msg_free of one does
 * nothing, ek_msg_clone gives the same message, and a change (an attribute, an
 * appended child, take) gives EK_EPERM; everything else reads them as any
 * message. Any thread, at once (they are only read). Errors: EK_EINVAL (NULL out,
 * an unknown `which`).
 */
#define EK_RESP_SHARED_OK          0 /* +OK */
#define EK_RESP_SHARED_PONG        1 /* +PONG */
#define EK_RESP_SHARED_NULL_BULK   2 /* $-1 (RESP3: _) */
#define EK_RESP_SHARED_NULL_ARRAY  3 /* *-1 (RESP3: _) */
#define EK_RESP_SHARED_NULL        4 /* RESP3 _ (RESP2: $-1) */
#define EK_RESP_SHARED_ZERO        5 /* :0 */
#define EK_RESP_SHARED_ONE         6 /* :1 */
#define EK_RESP_SHARED_EMPTY_BULK  7 /* $0 */
#define EK_RESP_SHARED_EMPTY_ARRAY 8 /* *0 */
EK_EXTERN int ek_msg_resp_shared(int which, ek_msg **out);
/* 1 for a shared reply, 0 for an owned message, or EK_EINVAL. */
EK_EXTERN int ek_msg_is_shared(const ek_msg *m);

/* RESP3 attributes annotate the value that follows them on the wire: attach an
 * ATTRIBUTE (consumed, even on error; replacing any earlier one) to a value, which
 * the encoder writes before it; a decoder attaches the attribute it read.
 * Errors: EK_EINVAL (attr not an ATTRIBUTE), EK_EKIND (m not RESP), EK_EPERM (a
 * shared reply), EK_ENOMEM. */
EK_EXTERN int ek_msg_resp_set_attribute(ek_msg *m, ek_msg *attr);
/* The attached attribute, borrowed (*out NULL if none). Errors: EK_EINVAL,
 * EK_EKIND. */
EK_EXTERN int ek_msg_resp_attribute(const ek_msg *m, ek_msg **out);

/* ---- HTTP/1.x ---- */

/*
 * A request: method ("GET"), target ("/index.html"), version 10 (HTTP/1.0) or 11
 * (HTTP/1.1). Strings are copied (length-delimited; NUL bytes are not special).
 * Keep-alive starts as the version's default (1.1: on; 1.0: off).
 * Errors: EK_EINVAL (NULL, empty method, another version), EK_ENOMEM.
 */
EK_EXTERN int ek_msg_http_request(const char *method, size_t method_len, const char *target,
                                  size_t target_len, int version, ek_msg **out);
/* A response: status 100..999, reason (may be NULL with length 0), version. */
EK_EXTERN int ek_msg_http_response(int status, const char *reason, size_t reason_len, int version,
                                   ek_msg **out);

/* Request line and status line fields, borrowed (pointer, length; not
 * NUL-terminated). Errors: EK_EINVAL, EK_EKIND (a response's method, ...). */
EK_EXTERN int ek_msg_http_method(const ek_msg *m, const char **s, size_t *len);
EK_EXTERN int ek_msg_http_target(const ek_msg *m, const char **s, size_t *len);
EK_EXTERN int ek_msg_http_reason(const ek_msg *m, const char **s, size_t *len);
/* The status (100..999), or EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_http_status(const ek_msg *m);
/* The version (10 or 11), or EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_http_version(const ek_msg *m);

/* Append a header (both copied; order and duplicates are kept).
 * Errors: EK_EINVAL (empty name), EK_EKIND, EK_ERANGE, EK_ENOMEM. */
EK_EXTERN int ek_msg_http_add_header(ek_msg *m, const char *name, size_t name_len,
                                     const char *value, size_t value_len);
/* Number of headers, or EK_EINVAL, EK_EKIND. */
EK_EXTERN int64_t ek_msg_http_header_count(const ek_msg *m);
/* Header i, borrowed. Errors: EK_EINVAL, EK_EKIND, EK_ERANGE (i >= count). */
EK_EXTERN int ek_msg_http_header(const ek_msg *m, size_t i, const char **name, size_t *name_len,
                                 const char **value, size_t *value_len);
/* The first header named `name` (ASCII case-insensitive), borrowed.
 * Errors: EK_EINVAL, EK_EKIND, EK_ENOENT (no such header). */
EK_EXTERN int ek_msg_http_find_header(const ek_msg *m, const char *name, size_t name_len,
                                      const char **value, size_t *value_len);

/* Set the body (consumed, even on error; replaces an earlier body). Read it with
 * ek_msg_payload / ek_msg_data. Errors: EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_http_set_body(ek_msg *m, ek_bytes *body);
/* Set the body to a copy of data[0..len). Errors: EK_EINVAL, EK_EKIND, EK_ERANGE,
 * EK_ENOMEM. */
EK_EXTERN int ek_msg_http_set_body_copy(ek_msg *m, const void *data, size_t len);
/* Keep-alive: whether the connection stays open after this message (a decoder
 * sets it from the version and Connection header; a server reads it).
 * get: 1 or 0, or EK_EINVAL, EK_EKIND. set: EK_OK, EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_http_keep_alive(const ek_msg *m);
EK_EXTERN int ek_msg_http_set_keep_alive(ek_msg *m, int keep_alive);

/* ---- HOST ---- */

/*
 * A message carrying a host object. `clone` (may be NULL: ek_msg_clone then
 * fails with EK_ENOTSUP) copies it for ek_msg_clone; `drop` (may be NULL) runs
 * exactly once per object when its message is freed, on the freeing thread (a
 * binding that must release it on its interpreter's thread arranges that itself).
 * On error drop(obj) has run. Errors: EK_EINVAL, EK_ENOMEM.
 */
EK_EXTERN int ek_msg_host(void *obj, ek_clone_fn clone, ek_drop_fn drop, ek_msg **out);
/* The host object, borrowed. Errors: EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_host_get(const ek_msg *m, void **obj);

/* ---- STREAM ---- */

/*
 * A streaming response: a message whose content is a sequence of messages sent
 * later, through a bounded channel of capacity `cap` (>= 1). *tx is the
 * producer's end (an mpsc sender whose messages are ek_msg *; dropping the last
 * sender ends the stream); *out the message to return as the response. A server
 * writes each frame as it arrives. Frames still queued when the stream message
 * is freed are freed with it. Errors: EK_EINVAL, EK_ENOMEM.
 */
EK_EXTERN int ek_msg_stream(size_t cap, ek_mpsc_sender **tx, ek_msg **out);
/* The next frame of a stream: EK_OK with *frame (the caller's); EK_PENDING;
 * EK_ECLOSED at the end. Task context. Errors: EK_EINVAL, EK_EKIND. */
EK_EXTERN int ek_msg_stream_next(ek_msg *m, ek_cx *cx, ek_msg **frame);

#ifdef __cplusplus
}
#endif

#endif
