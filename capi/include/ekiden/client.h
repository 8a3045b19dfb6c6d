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
 * Failures: a connection that cannot be made, breaks (EK_ECONNRESET, end of
 * stream) or gets a corrupt response (EK_EPROTO) fails every request in flight
 * with that error. Without the reconnect option the service is then closed:
 * poll_ready gives that error for good. With it, the task connects again (after
 * the back-off) for the requests that come next.
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
 * A client service for the server at addr (an IP or Unix address, read at once;
 * a Unix address connects to that path). Consumes codec (a prototype: each
 * connection gets a clone), also on error; options is only read (NULL:
 * defaults). Any thread.
 * Errors: EK_EINVAL (NULL or wrong handles, an empty address), EK_ENOTSUP (the
 * codec cannot be cloned), EK_ECLOSED (runtime shut down), EK_ENOMEM.
 * Errors of the responses: the request's encoding error, EK_ECONNREFUSED and the
 * other connect errors, EK_ECONNRESET, EK_EPROTO, EK_ECLOSED (the client was
 * closed or the runtime shut down).
 */
EK_EXTERN int ek_client_connect(ek_runtime *rt, const ek_sockaddr *addr, ek_codec *codec,
                                const ek_client_options *options, ek_service **out);

#ifdef __cplusplus
}
#endif

#endif /* EKIDEN_CLIENT_H */
