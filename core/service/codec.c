/*
 * codec.c - the ek_codec handle, and the lines and length-delimited codecs
 * (tokio-util's LinesCodec and LengthDelimitedCodec). RESP is in codec_resp.c.
 * The codecs use only the public ek_buf / ek_msg functions.
 */
#include "codec.h"

#define EK__TAG_CODEC 0x454b4344u /* "EKCD" */

struct ek_codec {
    uint32_t tag; /* EK__TAG_CODEC */
    ek_codec_vtable vt;
    const ek__codec_ext *ext;
    void *self;
};

int ek_codec_new(const ek_codec_vtable *vt, void *self, ek_codec **out)
{
    return ek__codec_new_ext(vt, NULL, self, out);
}

int ek__codec_new_ext(const ek_codec_vtable *vt, const ek__codec_ext *ext, void *self,
                      ek_codec **out)
{
    if (vt == NULL || out == NULL || vt->decode == NULL || vt->encode == NULL) {
        if (vt != NULL && vt->drop != NULL) vt->drop(self);
        return EK_EINVAL;
    }
    ek_codec *c = ek__malloc(sizeof *c);
    if (c == NULL) {
        if (vt->drop != NULL) vt->drop(self);
        return EK_ENOMEM;
    }
    c->tag = EK__TAG_CODEC;
    c->vt = *vt;
    c->ext = ext;
    c->self = self;
    *out = c;
    return EK_OK;
}

int ek_codec_clone(ek_codec *c, ek_codec **out)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC) || out == NULL) return EK_EINVAL;
    if (c->vt.fork == NULL) return EK_ENOTSUP;
    void *self = NULL;
    int rc = c->vt.fork(c->self, &self);
    if (rc != EK_OK) return rc;
    return ek__codec_new_ext(&c->vt, c->ext, self, out);
}

const ek__codec_ext *ek__codec_ext_of(ek_codec *c, void **self)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC)) return NULL;
    *self = c->self;
    return c->ext;
}

void ek_codec_free(ek_codec *c)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC)) return;
    c->tag = EK__TAG_DEAD;
    if (c->vt.drop != NULL) c->vt.drop(c->self);
    ek__free(c);
}

int ek__codec_check(ek_codec *c)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC)) return EK_EINVAL;
    return c->vt.fork != NULL ? EK_OK : EK_ENOTSUP;
}

void *ek__codec_self(ek_codec *c, const ek_codec_vtable *vt)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC) || c->vt.decode != vt->decode) return NULL;
    return c->self;
}

static int ek__codec_result(int rc, const char **reason, const char *r)
{
    if (rc < 0 && reason != NULL) *reason = r != NULL ? r : ek_strerror(rc);
    return rc;
}

int ek_codec_decode(ek_codec *c, ek_buf *in, ek_msg **out, const char **reason)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC) || in == NULL || out == NULL) return EK_EINVAL;
    const char *r = NULL;
    *out = NULL;
    int rc = c->vt.decode(c->self, in, out, &r); /* before r is read */
    return ek__codec_result(rc, reason, r);
}

int ek_codec_decode_eof(ek_codec *c, ek_buf *in, ek_msg **out, const char **reason)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC) || in == NULL || out == NULL) return EK_EINVAL;
    const char *r = NULL;
    *out = NULL;
    int rc;
    if (c->vt.decode_eof != NULL) {
        rc = c->vt.decode_eof(c->self, in, out, &r);
    } else {
        /* Whatever decode still makes of the rest, then the verdict on what is left. */
        rc = c->vt.decode(c->self, in, out, &r);
        if (rc == EK_PENDING) {
            int64_t left = ek_buf_len(in);
            rc = left == 0 ? EK_ECLOSED : EK_EPROTO;
            if (left != 0) r = "bytes remaining on stream";
        }
    }
    return ek__codec_result(rc, reason, r);
}

int ek_codec_encode(ek_codec *c, const ek_msg *m, int what, ek_buf *out)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC) || ek_msg_kind(m) < 0 || out == NULL ||
        what < EK_CODEC_RESPONSE || what > EK_CODEC_PUSH)
        return EK_EINVAL;
    return c->vt.encode(c->self, m, what, out);
}

int ek_codec_encode_error(ek_codec *c, int err, const char *reason, ek_buf *out)
{
    if (!EK__CHECK_TAG(c, EK__TAG_CODEC) || out == NULL) return EK_EINVAL;
    if (c->vt.encode_error == NULL) return EK_OK;
    return c->vt.encode_error(c->self, err, reason != NULL ? reason : ek_strerror(err), out);
}

/* Split n bytes off the front of in as a BYTES message, dropping `skip` more
 * after them (a line's "\n") or `head` before them (a header). */
static int ek__codec_take_bytes(ek_buf *in, size_t head, size_t n, size_t skip, ek_msg **out)
{
    int rc = ek_buf_discard(in, head);
    if (rc != EK_OK) return rc;
    ek_bytes *b;
    rc = ek_buf_split_to(in, n, &b);
    if (rc != EK_OK) return rc;
    rc = ek_buf_discard(in, skip);
    if (rc != EK_OK) {
        ek_bytes_release(b);
        return rc;
    }
    return ek_msg_bytes_new(b, out);
}

/* ---- lines ---- */

typedef struct ek__lines {
    size_t max;
    size_t scanned; /* bytes already searched for "\n" (not searched again) */
} ek__lines;

static int ek__lines_decode(void *self, ek_buf *in, ek_msg **out, const char **reason)
{
    ek__lines *l = self;
    const uint8_t *p = ek_buf_data(in);
    size_t len = (size_t)ek_buf_len(in);
    /* Look at no more than max + 1 bytes (a line of max bytes and its "\n"). */
    size_t limit = len < l->max + 1 ? len : l->max + 1;
    const uint8_t *nl =
        l->scanned < limit ? memchr(p + l->scanned, '\n', limit - l->scanned) : NULL;
    if (nl == NULL) {
        l->scanned = limit;
        if (len > l->max) {
            *reason = "line longer than the maximum";
            return EK_EMSGSIZE;
        }
        return EK_PENDING;
    }
    l->scanned = 0;
    size_t n = (size_t)(nl - p), body = n;
    if (body > 0 && p[body - 1] == '\r') body--;
    return ek__codec_take_bytes(in, 0, body, n - body + 1, out);
}

static int ek__lines_decode_eof(void *self, ek_buf *in, ek_msg **out, const char **reason)
{
    int rc = ek__lines_decode(self, in, out, reason);
    if (rc != EK_PENDING) return rc;
    size_t len = (size_t)ek_buf_len(in);
    if (len == 0) return EK_ECLOSED;
    ((ek__lines *)self)->scanned = 0;
    const uint8_t *p = ek_buf_data(in);
    size_t body = p[len - 1] == '\r' ? len - 1 : len;
    return ek__codec_take_bytes(in, 0, body, len - body, out);
}

static int ek__lines_encode(void *self, const ek_msg *m, int what, ek_buf *out)
{
    const uint8_t *d;
    size_t n;
    if (ek_msg_kind(m) != EK_MSG_BYTES) return EK_EKIND;
    int rc = ek_msg_data(m, &d, &n);
    if (rc != EK_OK) return rc;
    if (memchr(d, '\n', n) != NULL) return EK_EINVAL;
    rc = ek_buf_append(out, d, n);
    return rc == EK_OK ? ek_buf_append(out, "\n", 1) : rc;
}

static int ek__lines_fork(void *self, void **out)
{
    ek__lines *l = ek__malloc(sizeof *l);
    if (l == NULL) return EK_ENOMEM;
    l->max = ((ek__lines *)self)->max;
    l->scanned = 0;
    *out = l;
    return EK_OK;
}

static const ek_codec_vtable ek__lines_vtable = {
    .decode = ek__lines_decode,
    .decode_eof = ek__lines_decode_eof,
    .encode = ek__lines_encode,
    .fork = ek__lines_fork,
    .drop = ek__free,
};

int ek_codec_lines(size_t max_len, ek_codec **out)
{
    if (out == NULL) return EK_EINVAL;
    ek__lines proto = {.max = max_len ? max_len : EK_LINES_DEFAULT_MAX};
    void *self;
    int rc = ek__lines_fork(&proto, &self);
    if (rc != EK_OK) return rc;
    return ek_codec_new(&ek__lines_vtable, self, out);
}

/* ---- length-delimited ---- */

typedef struct ek__length {
    size_t offset, field, skip, max;
    int64_t adjust;
    int little;
} ek__length;

static uint64_t ek__length_read(const ek__length *c, const uint8_t *p)
{
    uint64_t v = 0;
    for (size_t i = 0; i < c->field; i++) {
        size_t k = c->little ? c->field - 1 - i : i;
        v = (v << 8) | p[k];
    }
    return v;
}

static int ek__length_decode(void *self, ek_buf *in, ek_msg **out, const char **reason)
{
    ek__length *c = self;
    const uint8_t *p = ek_buf_data(in);
    size_t len = (size_t)ek_buf_len(in), head = c->offset + c->field;
    if (len < head) return EK_PENDING;
    uint64_t v = ek__length_read(c, p + c->offset);
    /* The bytes after the length field: v + adjust, which must not underflow. */
    int64_t after;
    if (v > (uint64_t)INT64_MAX || __builtin_add_overflow((int64_t)v, c->adjust, &after) ||
        after < 0 || (uint64_t)after > (uint64_t)c->max + head) {
        *reason = "frame size too big";
        return EK_EMSGSIZE;
    }
    size_t total = head + (size_t)after;
    if (total < c->skip || total - c->skip > c->max) {
        *reason = "frame size too big";
        return EK_EMSGSIZE;
    }
    if (len < total) {
        /* Room for the whole frame at once, so the socket reads straight into it. */
        int rc = ek_buf_reserve(in, total - len, NULL, NULL);
        return rc == EK_OK ? EK_PENDING : rc;
    }
    return ek__codec_take_bytes(in, c->skip, total - c->skip, 0, out);
}

static int ek__length_encode(void *self, const ek_msg *m, int what, ek_buf *out)
{
    ek__length *c = self;
    const uint8_t *d;
    size_t n;
    if (ek_msg_kind(m) != EK_MSG_BYTES) return EK_EKIND;
    int rc = ek_msg_data(m, &d, &n);
    if (rc != EK_OK) return rc;
    if (n > c->max) return EK_EMSGSIZE;
    int64_t v = (int64_t)n - c->adjust;
    if (v < 0 || (c->field < 8 && (uint64_t)v >> (8 * c->field) != 0)) return EK_EMSGSIZE;
    uint8_t head[16] = {0};
    for (size_t i = 0; i < c->field; i++) {
        size_t k = c->little ? i : c->field - 1 - i;
        head[c->offset + k] = (uint8_t)((uint64_t)v >> (8 * i));
    }
    rc = ek_buf_append(out, head, c->offset + c->field);
    return rc == EK_OK ? ek_buf_append(out, d, n) : rc;
}

static int ek__length_fork(void *self, void **out)
{
    ek__length *c = ek__malloc(sizeof *c);
    if (c == NULL) return EK_ENOMEM;
    *c = *(ek__length *)self;
    *out = c;
    return EK_OK;
}

static const ek_codec_vtable ek__length_vtable = {
    .decode = ek__length_decode,
    .encode = ek__length_encode,
    .fork = ek__length_fork,
    .drop = ek__free,
};

int ek_codec_length_delimited(size_t field_offset, size_t field_len, int64_t adjustment,
                              size_t num_skip, int little_endian, size_t max_frame, ek_codec **out)
{
    if (out == NULL || field_len == 0 || (field_len > 4 && field_len != 8) || field_offset > 8)
        return EK_EINVAL;
    ek__length c = {
        .offset = field_offset,
        .field = field_len,
        .skip = num_skip == EK_LENGTH_SKIP_DEFAULT ? field_offset + field_len : num_skip,
        .max = max_frame ? max_frame : EK_LENGTH_DEFAULT_MAX,
        .adjust = adjustment,
        .little = little_endian != 0,
    };
    if (c.skip > field_offset + field_len + (adjustment > 0 ? (size_t)adjustment : 0))
        return EK_EINVAL;
    void *self;
    int rc = ek__length_fork(&c, &self);
    if (rc != EK_OK) return rc;
    return ek_codec_new(&ek__length_vtable, self, out);
}
