/*
 * ekiden/client.h - the framed client: a service whose requests go over one
 * connection, pipelined (tokio-proto's pipeline client). Included by ekiden.h
 * (after ekiden/server.h).
 *
 * ek_client_connect returns at once with a service; a connection task connects,
 * writes each request (encoded with the codec as EK_CODEC_REQUEST) as soon as it
 * is called, reads the responses and hands them to the callers in order (the
 * n-th frame decoded answers the n-th request written). The service is shareable:
 * ek_service_clone gives handles for other tasks, all over the same connection;
 * the connection closes when the last handle is freed and nothing is in flight.
 * ek_svc_balance over several clients is how a program talks to many servers.
 *
 * A streaming request (an EK_MSG_STREAM, ekiden/msg.h) is written as its frames
 * come, with a codec that can (HTTP: a chunked body, ekiden/codec.h); the
 * requests after it are written once it ends, and at most 64 KiB of its frames
 * wait unwritten (then the task stops taking frames: back-pressure on its
 * producer). Its response may come before it ends.
 * At the end of the stream the codec decodes what is left (ek_codec_decode_eof:
 * an HTTP response that the end of the stream delimits answers its request).
 * Failures: a connection that cannot be made, breaks (EK_ECONNRESET, also for an
 * end of stream while requests still wait for their answer) or gets a corrupt
 * response (EK_EPROTO) fails every request in flight with that error; a server
 * that ends the conversation (an HTTP "Connection: close" response, or the end
 * of the stream with nothing in flight) gives EK_ECLOSED. Without the
 * reconnect option the service is then closed: poll_ready gives that error for
 * good. With it, the task connects again (after the back-off) for the requests
 * that come next.
 */
#ifndef EKIDEN_CLIENT_H
#define EKIDEN_CLIENT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_client_options ek_client_options;

/* Defaults: no reconnect, max_in_flight 1024, TCP_NODELAY on.
 * Errors: EK_EINVAL (NULL out), EK_ENOMEM. */
EK_EXTERN int ek_client_options_new(ek_client_options **out);
EK_EXTERN void ek_client_options_free(ek_client_options *o);
/* Reconnect after a failure (on: 1), waiting backoff_ms (>= 1) first.
 * Errors: EK_EINVAL. */
EK_EXTERN int ek_client_options_set_reconnect(ek_client_options *o, int on, uint64_t backoff_ms);
/* Requests written and not yet answered before the client stops writing
 * (1..65536). Errors: EK_EINVAL. */
EK_EXTERN int ek_client_options_set_max_in_flight(ek_client_options *o, size_t n);

/*
 * Push frames: out-of-band frames that answer no request (RESP3's `>` values:
 * pub/sub messages, client-side caching invalidations). This makes a channel of
 * capacity cap (0: unbounded) and gives its receiver in *rx (the caller's:
 * ek_mpsc_receiver_drop); each client connected with these options sends the push
 * frames it decodes there as ek_msg * (a RESP PUSH value, the receiver's to free
 * with ek_msg_free), in the order they came. Without it push frames are dropped.
 * A full channel is back-pressure: the client stops reading its connection (its
 * responses wait too) until there is room. A dropped receiver makes the clients
 * drop push frames from then on. The receiver sees EK_ECLOSED once every client
 * connected with these options is gone and the options are freed (or given
 * another channel by a second call, which replaces the first).
 *
 * RESP pub/sub (the built-in RESP client codec, ek_codec_resp_client): in RESP3
 * (after a `HELLO 3` request answered without an error, on that connection) the
 * confirmations of SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBE
 * commands are push frames, one per channel: the request is answered with (a
 * copy of) the first push frame of its command's kind, and every one of them,
 * that first one included, also goes to the push channel. Other requests are
 * answered as usual meanwhile, in order (redis answers any command on a
 * subscribed RESP3 connection). These commands on a connection that has not
 * switched to RESP3 fail with EK_ENOTSUP before anything is written: in RESP2 a
 * subscribed connection's frames are not answers in request order. After a
 * reconnect the connection is RESP2 and subscribed to nothing again (the server
 * forgot it): send HELLO 3 and subscribe again.
 * Errors: EK_EINVAL (bad handle, NULL rx), EK_ENOMEM.
 */
EK_EXTERN int ek_client_options_set_push(ek_client_options *o, size_t cap, ek_mpsc_receiver **rx);

/*
 * A client service for the server at addr (an IP or Unix address, read at once;
 * a Unix address connects to that path). Consumes codec (a prototype: each
 * connection gets a clone), also on error; options is only read (NULL:
 * defaults). Any thread.
 * Errors: EK_EINVAL (NULL or wrong handles, an empty address), EK_ENOTSUP (the
 * codec cannot be cloned), EK_ECLOSED (runtime shut down), EK_ENOMEM.
 * Errors of the responses: the request's encoding error (nothing of that request
 * is written), EK_ENOTSUP (see ek_client_options_set_push), EK_ECONNREFUSED and the
 * other connect errors, EK_ECONNRESET, EK_EPROTO, EK_ECLOSED (the client was
 * closed or the runtime shut down).
 */
EK_EXTERN int ek_client_connect(ek_runtime *rt, const ek_sockaddr *addr, ek_codec *codec,
                                const ek_client_options *options, ek_service **out);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_CLIENT_H */
