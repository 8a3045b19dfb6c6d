/*
 * resp.h - the RESP wire format (RESP2 and RESP3), without allocation of values:
 * a scanner that checks one complete frame at the start of a buffer and lists its
 * values as tokens in pre-order (an aggregate's token, then its elements). What
 * the tokens become (ek_msg values, a test's tree) is up to the caller, so the
 * one parser serves the codec, the hiredis differential test and the fuzzers.
 *
 * Two grammars:
 * - ek__resp_scan: any RESP2/RESP3 value (what a client reads, and what a
 *   RESP3 peer may send): + - : $ * and _ , # ! = ( % ~ > | (attributes). Strict:
 *   integers and lengths are decimal without '+' or leading zeros, every line
 *   ends in CRLF, a bulk payload is followed by CRLF.
 * - ek__resp_scan_request: what redis-server accepts from a client, with its
 *   exact behaviour (networking.c, processMultibulkBuffer and processInlineBuffer
 *   of redis 7): a multibulk of bulk strings, or an inline command line split as
 *   sdssplitargs does (quotes, escapes); redis's own "Protocol error: ..." text
 *   for every malformed request. Inline arguments may differ from the input bytes
 *   (escapes), so they are decoded into a scratch buffer the caller provides.
 *
 * Both are re-entrant and stateless: on EK__RESP_MORE the caller appends bytes
 * and scans again from the frame's start (a frame is scanned once it is whole,
 * as hiredis does with its buffer).
 */
#ifndef EK_CORE_SERVICE_RESP_H
#define EK_CORE_SERVICE_RESP_H

#include <stddef.h>
#include <stdint.h>

/* Scan results. */
#define EK__RESP_FRAME   0 /* a whole frame: *frame_len bytes, tokens filled */
#define EK__RESP_MORE    1 /* incomplete: read more bytes */
#define EK__RESP_CORRUPT 2 /* malformed: *err says why (static text) */
#define EK__RESP_NOMEM   3 /* the token vector could not grow */
#define EK__RESP_EMPTY   4 /* request grammar only: bytes consumed, no command */

/* Token types: the RESP type byte. */
enum {
    EK__RESP_SIMPLE = '+',
    EK__RESP_ERROR = '-',
    EK__RESP_INT = ':',
    EK__RESP_BULK = '$',
    EK__RESP_ARRAY = '*',
    EK__RESP_NULL = '_',
    EK__RESP_DOUBLE = ',',
    EK__RESP_BOOL = '#',
    EK__RESP_BLOB_ERROR = '!',
    EK__RESP_VERBATIM = '=',
    EK__RESP_BIGNUM = '(',
    EK__RESP_MAP = '%',
    EK__RESP_SET = '~',
    EK__RESP_PUSH = '>',
    EK__RESP_ATTR = '|',
};

typedef struct ek__resp_tok {
    uint8_t type; /* EK__RESP_* */
    uint8_t null; /* RESP2 null bulk ($-1) or null array (*-1) */
    uint8_t inl;  /* request grammar: payload lives in the scratch buffer */
    size_t off;   /* payload offset (strings, doubles, big numbers, verbatim) */
    size_t len;   /* payload length */
    int64_t n;    /* integer value, boolean 0/1, or element count of an
                   * aggregate (a map/attribute counts its pairs) */
} ek__resp_tok;

/* A growable token vector; zero-initialise, release with ek__resp_toks_free. */
typedef struct ek__resp_toks {
    ek__resp_tok *v;
    size_t len, cap;
} ek__resp_toks;

void ek__resp_toks_free(ek__resp_toks *t);

typedef struct ek__resp_limits {
    size_t max_bulk;    /* largest bulk payload (redis: 512 MiB) */
    int64_t max_count;  /* largest aggregate count */
    unsigned max_depth; /* deepest nesting (1: no aggregate inside another) */
    size_t max_inline;  /* longest line (redis: 64 KiB for requests) */
    int resp2_only;     /* 1: only the RESP2 types + - : $ * (as hiredis 0.14) */
} ek__resp_limits;

/* redis 7's: 512 MiB bulks, INT_MAX counts, 64 KiB inline; depth 128. */
extern const ek__resp_limits ek__resp_default_limits;

/*
 * Scan one value at buf[0..len). On EK__RESP_FRAME, *frame_len is its length and
 * toks holds its tokens (cleared first). On EK__RESP_CORRUPT, *err is a static
 * message.
 */
int ek__resp_scan(const char *buf, size_t len, const ek__resp_limits *lim, ek__resp_toks *toks,
                  size_t *frame_len, const char **err);

/*
 * Scan one redis request at buf[0..len): tokens are one ARRAY token then BULK
 * tokens (inline arguments have inl = 1 and point into *scratch, which grows as
 * needed; free it with ek__free). EK__RESP_EMPTY: *frame_len bytes held no
 * command (an empty line, *0 or *-1), skip them. On EK__RESP_CORRUPT, *err is
 * redis's reply text without the leading '-' and CRLF ("Protocol error: ...").
 */
int ek__resp_scan_request(const char *buf, size_t len, const ek__resp_limits *lim,
                          ek__resp_toks *toks, char **scratch, size_t *scratch_cap,
                          size_t *frame_len, const char **err);

/* The expected-'$' error names the byte it got: redis's text is built with it.
 * ek__resp_scan_request returns this static buffer for that case, so it is the
 * one non-constant message; a copy is per thread. */

#endif
