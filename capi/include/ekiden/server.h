/*
 * ekiden/server.h - the framed server: a listener, a codec and a service become a
 * network server (tokio-proto's pipeline server). Included by ekiden.h (after
 * ekiden/codec.h and ekiden/service.h).
 *
 * ek_server_serve runs an accept loop task and one task per connection. Each
 * connection reads into its own ek_buf, decodes requests with its own clone of
 * the codec, calls its own clone of the service (ek_service_clone; one that is
 * not shareable is put behind ek_svc_buffer; a per-connection clone is also where
 * a service keeps per-connection state, such as redis's subscriptions), writes the
 * responses in request order (pipelining: requests keep being read and called
 * while earlier responses are pending, up to max_in_flight).
 *
 * Back-pressure: a connection stops reading while max_in_flight responses are
 * pending or while more than max_write_buffer bytes of responses wait for the
 * peer to read them; it goes on when they drain (memory per connection stays
 * bounded whatever a client pipelines).
 *
 * Streaming responses: a response that is an EK_MSG_STREAM message (ekiden/msg.h)
 * is written frame by frame as its frames arrive. Its first frame takes the
 * response's place in request order (encoded as EK_CODEC_RESPONSE); after that
 * the stream is the connection's push stream: its later frames (EK_CODEC_PUSH)
 * are written between whole responses, as they come, and responses to later
 * requests are not held behind it. It ends when its producer drops its sender.
 * This is redis's SUBSCRIBE: the confirmation is the first frame, messages follow,
 * and UNSUBSCRIBE or PING on the same connection are answered meanwhile.
 *
 * Errors on a connection close that connection only, after writing what it owes:
 * corrupt input (the codec's decode error) writes the responses to the requests
 * before it, then the codec's error reply (encode_error: redis's "-ERR Protocol
 * error: ..."), then closes; a failed response (a negative result of the
 * response future) is answered the same way, with the error's text. The reason
 * goes to the log callback. Other connections are unaffected.
 */
#ifndef EKIDEN_SERVER_H
#define EKIDEN_SERVER_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_server ek_server;
typedef struct ek_server_options ek_server_options;

/*
 * Called when a connection closes because of an error: err is the code
 * (EK_EPROTO, EK_EMSGSIZE for corrupt or oversized input, the response's error,
 * EK_ETIMEDOUT for the idle timeout, a socket error), reason a text (static or
 * valid during the call), peer the peer's address as text. On the connection's
 * runtime thread; must not block.
 */
typedef void (*ek_server_log_fn)(void *ud, int err, const char *reason, const char *peer);

/* Options with defaults: max_in_flight 128, max_write_buffer 4 MiB, no idle
 * timeout, TCP_NODELAY on, no log. Any thread.
 * Errors: EK_EINVAL (NULL out), EK_ENOMEM. */
EK_EXTERN int ek_server_options_new(ek_server_options **out);
EK_EXTERN void ek_server_options_free(ek_server_options *o);
/* Pending responses per connection before it stops reading (1..65536). */
EK_EXTERN int ek_server_options_set_max_in_flight(ek_server_options *o, size_t n);
/* Response bytes waiting for the peer before the connection stops reading
 * (>= 1). */
EK_EXTERN int ek_server_options_set_max_write_buffer(ek_server_options *o, size_t bytes);
/* Close a connection with nothing in flight after ms without a byte read or
 * written (0: never). Reported to the log as EK_ETIMEDOUT. */
EK_EXTERN int ek_server_options_set_idle_timeout_ms(ek_server_options *o, uint64_t ms);
/* TCP_NODELAY on accepted TCP connections (1, the default) or not (0). */
EK_EXTERN int ek_server_options_set_nodelay(ek_server_options *o, int on);
/*
 * Local serving (0, the default, or 1): the accept loop and every connection
 * task are local tasks (ek_spawn_local) of the thread that calls
 * ek_server_serve, and the service is called, and its responses polled, only
 * there; a service that is not shareable is put behind ek_svc_buffer_local
 * instead of ek_svc_buffer. For a service that must run on one thread (a host
 * language's, whose interpreter is single-threaded): its requests no longer
 * cross to that thread and back. That thread must drive local tasks (be in
 * ek_block_on or a current-thread runtime's loop) for the server to make
 * progress; reads and writes are then done on it too. ek_server_serve then
 * fails as ek_spawn_local does (EK_EWRONGTHREAD from a thread that cannot
 * have local tasks of the runtime). ek_server_shutdown from the serving
 * thread gives EK_EDEADLK (it would wait for tasks only that thread runs: call
 * it from another thread while the serving thread drives), and ek_server_free
 * there does not wait: the connections close when the thread next drives its
 * local tasks, or when the runtime shuts down. Errors: EK_EINVAL (bad options,
 * on not 0 or 1).
 */
EK_EXTERN int ek_server_options_set_local(ek_server_options *o, int on);
/* The log callback (NULL: none) and its user data. */
EK_EXTERN int ek_server_options_set_log(ek_server_options *o, ek_server_log_fn fn, void *ud);

/*
 * Serve: spawn the accept loop on rt. Consumes the listener, the codec (a
 * prototype: each connection gets ek_codec_clone of it) and the service (each
 * connection gets ek_service_clone of it; a service that is not shareable is put
 * behind ek_svc_buffer first, so that one worker task owns it), also on error.
 * options is only read (NULL: defaults). *out is the server's handle (free with
 * ek_server_free). Any thread. Errors: EK_EINVAL (NULL or wrong handles),
 * EK_ENOTSUP (the codec cannot be cloned), EK_ECLOSED (runtime shut down),
 * EK_ENOMEM.
 */
EK_EXTERN int ek_server_serve(ek_runtime *rt, ek_tcp_listener *listener, ek_codec *codec,
                              ek_service *svc, const ek_server_options *options, ek_server **out);
/* The same over a Unix stream listener. */
EK_EXTERN int ek_server_serve_unix(ek_runtime *rt, ek_unix_listener *listener, ek_codec *codec,
                                   ek_service *svc, const ek_server_options *options,
                                   ek_server **out);

/*
 * Graceful shutdown: stop accepting (the listener is closed), let every
 * connection finish the requests it has read (answering them), close idle
 * connections, and wait up to grace_ms for all connections to close; then close
 * the rest at once (their pending responses are dropped). Blocks the calling
 * thread, which must not be a runtime thread (EK_EDEADLK). Idempotent.
 * Returns EK_OK (all closed within the grace period), EK_ETIMEDOUT (some were
 * forced), EK_EINVAL, EK_EDEADLK (also from the serving thread of a local
 * server, ek_server_options_set_local).
 */
EK_EXTERN int ek_server_shutdown(ek_server *s, uint64_t grace_ms);
/* Release the handle: shuts down first with grace 0 if that has not been done
 * (from a runtime thread the tasks are told to stop and not waited for). NULL
 * ignored. */
EK_EXTERN void ek_server_free(ek_server *s);

/* The address the server listens on (port 0 resolved). Errors: EK_EINVAL,
 * EK_ECLOSED (after shutdown). */
EK_EXTERN int ek_server_local_addr(ek_server *s, ek_sockaddr *out);

/* Server metrics: counters since start (and the open gauge). */
#define EK_SERVER_METRICS_MAP(X)                                                                   \
    X(CONNECTIONS_OPEN, "connections open now")                                                    \
    X(CONNECTIONS_TOTAL, "connections accepted")                                                   \
    X(REQUESTS, "requests decoded and called")                                                     \
    X(RESPONSES, "responses written (a stream counts once)")                                       \
    X(ERRORS, "responses that failed")                                                             \
    X(DECODE_FAILURES, "connections closed for corrupt or oversized input")                        \
    X(IDLE_CLOSES, "connections closed by the idle timeout")                                       \
    X(BYTES_IN, "bytes read")                                                                      \
    X(BYTES_OUT, "bytes written")

enum ek_server_metric {
#define EK__SERVER_METRIC_ENUM(name, doc) EK_SERVER_METRIC_##name,
    EK_SERVER_METRICS_MAP(EK__SERVER_METRIC_ENUM)
#undef EK__SERVER_METRIC_ENUM
        EK_SERVER_METRIC_COUNT
};
/* Fill values[0..n) (indexed by EK_SERVER_METRIC_*); returns the number of
 * metrics this library knows, or EK_EINVAL. Any thread. */
EK_EXTERN int ek_server_metrics(ek_server *s, uint64_t *values, size_t n);
/* A metric's name ("REQUESTS"), or NULL for an unknown key. */
EK_EXTERN const char *ek_server_metric_name(int key);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_SERVER_H */
