/* Federation transport: see federation.h and schemas/federation.md §3.
 * One listener thread (federation.listen) handles one peer connection at a
 * time, each bounded by timeouts; one sender thread pushes our summary to
 * every peer of federation.peers each interval, backing off when a peer is
 * away.  Both verify the other side's certificate against federation's CA;
 * the sender also checks the peer's name, the listener that the client's
 * certificate names one of the peers.  One mutex guards the outbox, the
 * inbox and the status; the engine is only touched by ppf_fed_tick.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "common/log.h"
#include "peripheral/federation.h"

#define FED_FRAME_MAGIC  "PPFF"
#define FED_REPLY_MAGIC  "PPFA"
#define FED_TYPE_SUMMARY 1u
#define FED_IO_TIMEOUT   5      /* s: handshake and each read/write */
#define FED_CONNECT_MS   3000
#define FED_BACKOFF_MAX  60.0   /* s: longest wait between tries of a lost peer */
#define FED_MAX_SOURCES  128    /* distinct certificates we keep status for */
#define FED_MSG          256

struct fed_out {                /* a peer we send to */
    char *addr, *host, *port;
    double next_try;
    unsigned fails;
    uint64_t ok, rejected, failures;
    double last_ok, error_time;
    char error[FED_MSG];
};

struct fed_in {                 /* a peer that sends to us, by certificate DN */
    char *name;
    uint64_t ok, rejected, merged;
    double last_ok, error_time;
    char error[FED_MSG];
    struct ppf_fed_summary *pending;    /* checked, waiting for the tick */
    uint8_t *kept;              /* the last accepted summary, to merge again */
    size_t kept_len;
};

struct ppf_fed {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, started_listener, started_sender, remerge;
    pthread_t listener, sender;
    int lfd, wake[2];
    gnutls_certificate_credentials_t cred;
    char *listen;
    char state[FED_MSG];
    double interval;
    /* tenants kept local */
    char **private_tenants;
    size_t nprivate;
    /* outbox */
    uint8_t *outbox;
    size_t outbox_len;
    uint32_t exported;
    double next_export;
    /* peers */
    struct fed_out *out;
    size_t nout;
    struct fed_in in[FED_MAX_SOURCES];
    size_t nin;
    uint64_t refused;
    char refused_error[FED_MSG];
};

/* snprintf that cuts long messages quietly (they are for people). */
static void fed_fmt(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fed_fmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

static double
fed_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Splits "host:port" or "[v6]:port"; 0 or -1. */
static int
fed_split(const char *hp, char **host, char **port)
{
    const char *colon;

    *host = *port = NULL;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');

        if (!end || end[1] != ':')
            return -1;
        *host = strndup(hp + 1, (size_t)(end - hp - 1));
        colon = end + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon)
            return -1;
        *host = strndup(hp, (size_t)(colon - hp));
    }
    *port = strdup(colon + 1);
    if (!*host || !*port || !**host || !**port) {
        free(*host);
        free(*port);
        *host = *port = NULL;
        return -1;
    }
    return 0;
}

static bool
fed_share(void *ctx, const char *tenant)
{
    const struct ppf_fed *f = ctx;

    if (!tenant)
        return true;            /* public images */
    for (size_t i = 0; i < f->nprivate; i++)
        if (strcmp(f->private_tenants[i], tenant) == 0)
            return false;
    return true;
}

/* --- I/O helpers --------------------------------------------------------- */

static int
fed_send_all(gnutls_session_t s, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = gnutls_record_send(s, p, len);

        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
            continue;
        if (n <= 0)
            return n < 0 ? (int)n : GNUTLS_E_PUSH_ERROR;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
fed_recv_all(gnutls_session_t s, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = gnutls_record_recv(s, p, len);

        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
            continue;
        if (n == 0)
            return GNUTLS_E_PREMATURE_TERMINATION;
        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
fed_timeouts(int fd)
{
    struct timeval tv = { .tv_sec = FED_IO_TIMEOUT };

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int
fed_session(struct ppf_fed *f, unsigned flags, int fd, gnutls_session_t *out)
{
    gnutls_session_t s;
    int r;

    *out = NULL;
    if ((r = gnutls_init(&s, flags)) < 0)
        return r;
    if ((r = gnutls_set_default_priority(s)) < 0
        || (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, f->cred)) < 0) {
        gnutls_deinit(s);
        return r;
    }
    gnutls_transport_set_int(s, fd);
    gnutls_handshake_set_timeout(s, FED_IO_TIMEOUT * 1000);
    *out = s;
    return 0;
}

static int
fed_handshake(gnutls_session_t s)
{
    int r;

    do
        r = gnutls_handshake(s);
    while (r < 0 && gnutls_error_is_fatal(r) == 0);
    return r;
}

/* --- the listener -------------------------------------------------------- */

static struct fed_in *
fed_source(struct ppf_fed *f, const char *name)
{
    struct fed_in *in;

    for (size_t i = 0; i < f->nin; i++)
        if (strcmp(f->in[i].name, name) == 0)
            return &f->in[i];
    if (f->nin == FED_MAX_SOURCES)
        return NULL;
    in = &f->in[f->nin];
    memset(in, 0, sizeof *in);
    if (!(in->name = strdup(name)))
        return NULL;
    f->nin++;
    return in;
}

static void
fed_refuse(struct ppf_fed *f, const char *addr, const char *why)
{
    pthread_mutex_lock(&f->lock);
    f->refused++;
    fed_fmt(f->refused_error, sizeof f->refused_error, "%s: %s", addr, why);
    pthread_mutex_unlock(&f->lock);
    ppf_warn("federation", "refused a connection from %s: %s", addr, why);
}

static void
fed_reply(gnutls_session_t s, uint32_t status, const char *msg)
{
    uint8_t buf[12 + FED_MSG];
    size_t n = strlen(msg) < FED_MSG ? strlen(msg) : FED_MSG - 1;

    memcpy(buf, FED_REPLY_MAGIC, 4);
    put32(buf + 4, status);
    put32(buf + 8, (uint32_t)n);
    memcpy(buf + 12, msg, n);
    fed_send_all(s, buf, 12 + n);
}

/* The verified DN of the client, if its certificate names one of the
 * peers; else NULL and why. */
static char *
fed_client_identity(struct ppf_fed *f, gnutls_session_t s, char *why, size_t whylen)
{
    const gnutls_datum_t *certs;
    unsigned int ncerts = 0, status = 0;
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = { NULL, 0 }, txt = { NULL, 0 };
    char *name = NULL;
    int r;

    if ((r = gnutls_certificate_verify_peers3(s, NULL, &status)) < 0) {
        fed_fmt(why, whylen, "cannot verify its certificate: %s", gnutls_strerror(r));
        return NULL;
    }
    if (status) {
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
            fed_fmt(why, whylen, "certificate not trusted (federation.ca_file): %s",
                     (const char *)txt.data);
            gnutls_free(txt.data);
        } else {
            fed_fmt(why, whylen, "certificate not trusted (federation.ca_file)");
        }
        return NULL;
    }
    certs = gnutls_certificate_get_peers(s, &ncerts);
    if (!certs || ncerts == 0) {
        fed_fmt(why, whylen, "no client certificate");
        return NULL;
    }
    if (gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0
        || gnutls_x509_crt_get_dn2(crt, &dn) < 0) {
        fed_fmt(why, whylen, "unreadable client certificate");
        gnutls_x509_crt_deinit(crt);
        return NULL;
    }
    for (size_t i = 0; i < f->nout && !name; i++)
        if (gnutls_x509_crt_check_hostname(crt, f->out[i].host))
            name = strndup((const char *)dn.data, dn.size);
    if (!name)
        fed_fmt(why, whylen, "certificate %.*s names none of federation.peers",
                 (int)(dn.size > 120 ? 120 : dn.size), (const char *)dn.data);
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
    return name;
}

static void
fed_in_reject(struct ppf_fed *f, const char *name, const char *why)
{
    struct fed_in *in;

    pthread_mutex_lock(&f->lock);
    if ((in = fed_source(f, name))) {
        in->rejected++;
        in->error_time = fed_now();
        fed_fmt(in->error, sizeof in->error, "%s", why);
    }
    pthread_mutex_unlock(&f->lock);
    ppf_warn("federation", "rejected a summary from %s: %s", name, why);
}

static void
fed_serve(struct ppf_fed *f, int fd, const char *addr)
{
    gnutls_session_t s = NULL;
    char why[FED_MSG], err[FED_MSG];
    char *name = NULL;
    uint8_t hdr[12], *body = NULL;
    struct ppf_fed_summary *sum = NULL;
    uint32_t len;
    int r;

    fed_timeouts(fd);
    if ((r = fed_session(f, GNUTLS_SERVER, fd, &s)) < 0) {
        fed_refuse(f, addr, gnutls_strerror(r));
        return;
    }
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    if ((r = fed_handshake(s)) < 0) {
        fed_fmt(why, sizeof why, "TLS handshake failed: %s", gnutls_strerror(r));
        fed_refuse(f, addr, why);
        goto out;
    }
    if (!(name = fed_client_identity(f, s, why, sizeof why))) {
        fed_refuse(f, addr, why);
        goto out;
    }
    if ((r = fed_recv_all(s, hdr, sizeof hdr)) < 0) {
        fed_fmt(why, sizeof why, "no summary received: %s", gnutls_strerror(r));
        fed_in_reject(f, name, why);
        goto out;
    }
    len = get32(hdr + 8);
    if (memcmp(hdr, FED_FRAME_MAGIC, 4) != 0 || get32(hdr + 4) != FED_TYPE_SUMMARY) {
        fed_in_reject(f, name, "not a federation message (bad frame header)");
        fed_reply(s, 1, "bad frame header");
        goto out;
    }
    if (len > PPF_FED_MAX_SUMMARY) {
        fed_fmt(why, sizeof why, "oversized summary: %" PRIu32 " bytes, the limit is %u",
                 len, PPF_FED_MAX_SUMMARY);
        fed_in_reject(f, name, why);
        fed_reply(s, 1, why);
        goto out;
    }
    if (!(body = malloc(len ? len : 1))) {
        fed_reply(s, 1, "out of memory");
        goto out;
    }
    if ((r = fed_recv_all(s, body, len)) < 0) {
        fed_fmt(why, sizeof why, "summary cut short: %s", gnutls_strerror(r));
        fed_in_reject(f, name, why);
        goto out;
    }
    if (ppf_fed_summary_decode(body, len, &sum, err, sizeof err) < 0) {
        fed_fmt(why, sizeof why, "invalid summary: %s", err);
        fed_in_reject(f, name, why);
        fed_reply(s, 1, why);
        goto out;
    }
    pthread_mutex_lock(&f->lock);
    {
        struct fed_in *in = fed_source(f, name);

        if (in) {
            ppf_fed_summary_free(in->pending);
            in->pending = sum;
            free(in->kept);
            in->kept = body;
            in->kept_len = len;
            in->ok++;
            in->last_ok = fed_now();
            sum = NULL;
            body = NULL;
        }
    }
    pthread_mutex_unlock(&f->lock);
    fed_reply(s, sum ? 1 : 0, sum ? "too many peers" : "ok");
    ppf_debug("federation", "received a summary from %s (%" PRIu32 " bytes)", name, len);
out:
    ppf_fed_summary_free(sum);
    free(body);
    free(name);
    if (s) {
        gnutls_bye(s, GNUTLS_SHUT_WR);
        gnutls_deinit(s);
    }
}

static void *
fed_listener(void *arg)
{
    struct ppf_fed *f = arg;

    for (;;) {
        struct pollfd p[2] = { { f->lfd, POLLIN, 0 }, { f->wake[0], POLLIN, 0 } };
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char host[NI_MAXHOST], serv[NI_MAXSERV], addr[NI_MAXHOST + NI_MAXSERV + 4];
        int fd;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        fd = accept4(f->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            fed_fmt(addr, sizeof addr, "?");
        else
            fed_fmt(addr, sizeof addr, "%s:%s", host, serv);
        fed_serve(f, fd, addr);
        close(fd);
    }
    return NULL;
}

/* --- the sender ---------------------------------------------------------- */

static int
fed_connect(const char *host, const char *port, char *why, size_t whylen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res, *ai;
    int fd = -1, r;

    if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
        fed_fmt(why, whylen, "cannot resolve: %s", gai_strerror(r));
        return -1;
    }
    fed_fmt(why, whylen, "cannot connect");
    for (ai = res; ai; ai = ai->ai_next) {
        struct pollfd p;
        int err = 0;
        socklen_t el = sizeof err;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            fed_fmt(why, whylen, "connect: %s", strerror(errno));
            close(fd);
            fd = -1;
            continue;
        }
        p = (struct pollfd){ fd, POLLOUT, 0 };
        if (poll(&p, 1, FED_CONNECT_MS) != 1
            || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            fed_fmt(why, whylen, "connect: %s", err ? strerror(err) : "timed out");
            close(fd);
            fd = -1;
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        break;
    }
    freeaddrinfo(res);
    return fd;
}

/* Sends blob to peer o; 0 (accepted), 1 (refused by the peer), -1 (no
 * exchange).  why says what went wrong. */
static int
fed_push(struct ppf_fed *f, const struct fed_out *o, const uint8_t *blob, size_t len,
         char *why, size_t whylen)
{
    gnutls_session_t s = NULL;
    uint8_t hdr[12], rep[12];
    char msg[FED_MSG];
    struct in6_addr a6;
    int fd, r, rc = -1;
    uint32_t n;

    if ((fd = fed_connect(o->host, o->port, why, whylen)) < 0)
        return -1;
    fed_timeouts(fd);
    if ((r = fed_session(f, GNUTLS_CLIENT, fd, &s)) < 0) {
        fed_fmt(why, whylen, "TLS: %s", gnutls_strerror(r));
        goto out;
    }
    /* its certificate must be from our CA and name the host we dialled */
    gnutls_session_set_verify_cert(s, o->host, 0);
    if (inet_pton(AF_INET, o->host, &a6) != 1 && inet_pton(AF_INET6, o->host, &a6) != 1)
        gnutls_server_name_set(s, GNUTLS_NAME_DNS, o->host, strlen(o->host));
    if ((r = fed_handshake(s)) < 0) {
        if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            gnutls_datum_t txt;
            unsigned st = gnutls_session_get_verify_cert_status(s);

            if (gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &txt, 0) == 0) {
                fed_fmt(why, whylen, "its certificate is not trusted: %s",
                         (const char *)txt.data);
                gnutls_free(txt.data);
                goto out;
            }
        }
        fed_fmt(why, whylen, "TLS handshake failed: %s", gnutls_strerror(r));
        goto out;
    }
    memcpy(hdr, FED_FRAME_MAGIC, 4);
    put32(hdr + 4, FED_TYPE_SUMMARY);
    put32(hdr + 8, (uint32_t)len);
    if ((r = fed_send_all(s, hdr, sizeof hdr)) < 0 || (r = fed_send_all(s, blob, len)) < 0
        || (r = fed_recv_all(s, rep, sizeof rep)) < 0) {
        fed_fmt(why, whylen, "exchange failed: %s", gnutls_strerror(r));
        goto out;
    }
    n = get32(rep + 8);
    if (memcmp(rep, FED_REPLY_MAGIC, 4) != 0 || n >= sizeof msg) {
        fed_fmt(why, whylen, "not a ppf peer (bad reply)");
        goto out;
    }
    if ((r = fed_recv_all(s, msg, n)) < 0) {
        fed_fmt(why, whylen, "reply cut short: %s", gnutls_strerror(r));
        goto out;
    }
    msg[n] = 0;
    for (uint32_t i = 0; i < n; i++)
        if ((unsigned char)msg[i] < 0x20)
            msg[i] = '?';
    if (get32(rep + 4) != 0) {
        fed_fmt(why, whylen, "the peer refused our summary: %s", msg);
        rc = 1;
    } else {
        rc = 0;
    }
    gnutls_bye(s, GNUTLS_SHUT_WR);
out:
    if (s)
        gnutls_deinit(s);
    close(fd);
    return rc;
}

static void *
fed_sender(void *arg)
{
    struct ppf_fed *f = arg;

    pthread_mutex_lock(&f->lock);
    while (!f->stop) {
        double now = fed_now(), next = now + 1;
        struct timespec until;

        for (size_t i = 0; i < f->nout && !f->stop && f->outbox; i++) {
            struct fed_out *o = &f->out[i];
            uint8_t *blob;
            size_t len = f->outbox_len;
            char why[FED_MSG] = "";
            int r;

            if (o->next_try > now) {
                if (o->next_try < next)
                    next = o->next_try;
                continue;
            }
            if (!(blob = malloc(len ? len : 1)))
                break;
            memcpy(blob, f->outbox, len);
            pthread_mutex_unlock(&f->lock);
            r = fed_push(f, o, blob, len, why, sizeof why);
            free(blob);
            pthread_mutex_lock(&f->lock);
            now = fed_now();
            if (r == 0) {
                o->ok++;
                o->last_ok = now;
                if (o->fails)
                    ppf_info("federation", "%s: exchanging again", o->addr);
                o->fails = 0;
                o->next_try = now + f->interval;
            } else {
                double wait;

                if (r > 0)
                    o->rejected++;
                else
                    o->failures++;
                o->fails++;
                wait = f->interval * exp2(o->fails > 16 ? 15 : o->fails - 1);
                if (wait > fmax(f->interval, FED_BACKOFF_MAX))
                    wait = fmax(f->interval, FED_BACKOFF_MAX);
                o->next_try = now + wait;
                if (o->fails == 1 || strcmp(o->error, why) != 0)
                    ppf_warn("federation", "%s: %s; trying again in %.0f s", o->addr, why,
                             wait);
                fed_fmt(o->error, sizeof o->error, "%s", why);
                o->error_time = now;
            }
            if (o->next_try < next)
                next = o->next_try;
        }
        if (f->stop)
            break;
        until.tv_sec = (time_t)next;
        until.tv_nsec = (long)((next - floor(next)) * 1e9);
        pthread_cond_timedwait(&f->cond, &f->lock, &until);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* --- set-up -------------------------------------------------------------- */

static int
fed_listen(struct ppf_fed *f, char *why, size_t whylen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE };
    struct addrinfo *res;
    char *host, *port;
    int r, one = 1;

    if (fed_split(f->listen, &host, &port) < 0) {
        fed_fmt(why, whylen, "federation.listen '%s' is not host:port", f->listen);
        return -1;
    }
    r = getaddrinfo(host, port, &hints, &res);
    free(host);
    free(port);
    if (r != 0) {
        fed_fmt(why, whylen, "federation.listen %s: %s", f->listen, gai_strerror(r));
        return -1;
    }
    f->lfd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (f->lfd < 0 || setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(f->lfd, res->ai_addr, res->ai_addrlen) < 0 || listen(f->lfd, 16) < 0) {
        fed_fmt(why, whylen, "federation.listen %s: %s", f->listen, strerror(errno));
        if (f->lfd >= 0)
            close(f->lfd);
        f->lfd = -1;
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}

static int
fed_credentials(struct ppf_fed *f, const struct ppf_policy *p, char *why, size_t whylen)
{
    int r;

    if (!p->federation.ca_file || !p->federation.cert_file || !p->federation.key_file) {
        fed_fmt(why, whylen, "federation needs ca_file, cert_file and key_file");
        return -1;
    }
    if ((r = gnutls_certificate_allocate_credentials(&f->cred)) < 0) {
        fed_fmt(why, whylen, "TLS: %s", gnutls_strerror(r));
        return -1;
    }
    r = gnutls_certificate_set_x509_trust_file(f->cred, p->federation.ca_file,
                                               GNUTLS_X509_FMT_PEM);
    if (r <= 0) {
        fed_fmt(why, whylen, "federation.ca_file %s: %s", p->federation.ca_file,
                 r < 0 ? gnutls_strerror(r) : "no certificate in it");
        return -1;
    }
    r = gnutls_certificate_set_x509_key_file(f->cred, p->federation.cert_file,
                                             p->federation.key_file, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        fed_fmt(why, whylen, "federation.cert_file %s / key_file %s: %s",
                 p->federation.cert_file, p->federation.key_file, gnutls_strerror(r));
        return -1;
    }
    return 0;
}

int
ppf_fed_new(const struct ppf_policy *p, struct ppf_fed **out)
{
    struct ppf_fed *f;
    char why[FED_MSG];

    *out = NULL;
    if (!p->federation.enabled)
        return 0;
    if (!(f = calloc(1, sizeof *f)))
        goto nomem;
    f->lfd = f->wake[0] = f->wake[1] = -1;
    pthread_mutex_init(&f->lock, NULL);
    {
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_cond_init(&f->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    f->interval = (double)p->federation.interval_ms / 1000.0;
    if (f->interval < 1)
        f->interval = 1;
    if (!(f->listen = strdup(p->federation.listen ? p->federation.listen : "")))
        goto nomem;
    for (size_t i = 0; i < p->ntenants; i++)
        if (!p->tenants[i].share) {
            char **v = realloc(f->private_tenants, (f->nprivate + 1) * sizeof *v);

            if (!v)
                goto nomem;
            f->private_tenants = v;
            if (!(v[f->nprivate] = strdup(p->tenants[i].name)))
                goto nomem;
            f->nprivate++;
        }
    if (p->federation.npeers && !(f->out = calloc(p->federation.npeers, sizeof *f->out)))
        goto nomem;
    for (size_t i = 0; i < p->federation.npeers; i++) {
        struct fed_out *o = &f->out[f->nout];

        if (fed_split(p->federation.peers[i], &o->host, &o->port) < 0) {
            ppf_warn("federation", "federation.peers[%zu] '%s' is not host:port; skipped",
                     i, p->federation.peers[i]);
            continue;
        }
        if (!(o->addr = strdup(p->federation.peers[i]))) {
            free(o->host);
            free(o->port);
            goto nomem;
        }
        f->nout++;
    }
    *out = f;
    if (fed_credentials(f, p, why, sizeof why) < 0 || fed_listen(f, why, sizeof why) < 0) {
        fed_fmt(f->state, sizeof f->state, "error: %s", why);
        ppf_err("federation", "%s; federation is off until a policy fixes it", why);
        return 0;
    }
    if (pipe2(f->wake, O_CLOEXEC) < 0) {
        fed_fmt(f->state, sizeof f->state, "error: pipe: %s", strerror(errno));
        return 0;
    }
    if (pthread_create(&f->listener, NULL, fed_listener, f) == 0)
        f->started_listener = true;
    if (pthread_create(&f->sender, NULL, fed_sender, f) == 0)
        f->started_sender = true;
    if (!f->started_listener || !f->started_sender) {
        fed_fmt(f->state, sizeof f->state, "error: cannot start its threads");
        ppf_err("federation", "cannot start the federation threads");
        return 0;
    }
    fed_fmt(f->state, sizeof f->state, "running");
    ppf_info("federation", "listening on %s, %zu peer%s, every %.0f s", f->listen, f->nout,
             f->nout == 1 ? "" : "s", f->interval);
    return 0;
nomem:
    ppf_err("federation", "out of memory");
    ppf_fed_free(f);
    *out = NULL;
    return -1;
}

void
ppf_fed_free(struct ppf_fed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->wake[1] >= 0 && write(f->wake[1], "x", 1) < 0) {
        /* the listener also stops at its next connection */
    }
    if (f->started_listener)
        pthread_join(f->listener, NULL);
    if (f->started_sender)
        pthread_join(f->sender, NULL);
    if (f->lfd >= 0)
        close(f->lfd);
    if (f->wake[0] >= 0)
        close(f->wake[0]);
    if (f->wake[1] >= 0)
        close(f->wake[1]);
    if (f->cred)
        gnutls_certificate_free_credentials(f->cred);
    for (size_t i = 0; i < f->nout; i++) {
        free(f->out[i].addr);
        free(f->out[i].host);
        free(f->out[i].port);
    }
    free(f->out);
    for (size_t i = 0; i < f->nin; i++) {
        free(f->in[i].name);
        ppf_fed_summary_free(f->in[i].pending);
        free(f->in[i].kept);
    }
    for (size_t i = 0; i < f->nprivate; i++)
        free(f->private_tenants[i]);
    free(f->private_tenants);
    free(f->outbox);
    free(f->listen);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* --- the core's side ----------------------------------------------------- */

static void
fed_export(struct ppf_fed *f, struct ppf_engine *e, double now)
{
    struct ppf_fed_summary *s;
    uint8_t *blob;
    size_t len;
    uint32_t n;

    if (ppf_engine_export(e, now, fed_share, f, &s) < 0) {
        ppf_warn("federation", "cannot make the summary for peers: %m");
        return;
    }
    n = s->nimages;
    if (ppf_fed_summary_encode(s, &blob, &len) < 0) {
        ppf_warn("federation", "cannot encode the summary for peers: %m");
        ppf_fed_summary_free(s);
        return;
    }
    ppf_fed_summary_free(s);
    pthread_mutex_lock(&f->lock);
    free(f->outbox);
    f->outbox = blob;
    f->outbox_len = len;
    f->exported = n;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

void
ppf_fed_tick(struct ppf_fed *f, struct ppf_engine *e, double now)
{
    struct { char *name; struct ppf_fed_summary *s; } todo[FED_MAX_SOURCES];
    size_t n = 0;

    if (!f || !f->started_sender)
        return;
    if (now >= f->next_export) {
        f->next_export = now + f->interval;
        fed_export(f, e, now);
    }
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nin; i++) {
        struct fed_in *in = &f->in[i];
        struct ppf_fed_summary *s = in->pending;
        char err[FED_MSG];

        in->pending = NULL;
        if (!s && f->remerge && in->kept
            && ppf_fed_summary_decode(in->kept, in->kept_len, &s, err, sizeof err) < 0)
            s = NULL;
        if (s && (todo[n].name = strdup(in->name)))
            todo[n++].s = s;
        else
            ppf_fed_summary_free(s);
    }
    f->remerge = false;
    pthread_mutex_unlock(&f->lock);
    for (size_t i = 0; i < n; i++) {
        struct ppf_fed_merge res;
        int r = ppf_engine_federate(e, todo[i].name, todo[i].s, now, &res);

        pthread_mutex_lock(&f->lock);
        for (size_t j = 0; j < f->nin; j++)
            if (strcmp(f->in[j].name, todo[i].name) == 0) {
                if (r < 0) {
                    fed_fmt(f->in[j].error, sizeof f->in[j].error,
                             "cannot merge its summary: %s", strerror(errno));
                    f->in[j].error_time = now;
                } else {
                    f->in[j].merged = res.images;
                }
            }
        pthread_mutex_unlock(&f->lock);
        if (r == 0)
            ppf_debug("federation", "merged %s: %" PRIu32 " images, %" PRIu32
                      " transitions, %" PRIu32 " dropped", todo[i].name, res.images,
                      res.edges, res.dropped);
        free(todo[i].name);
    }
}

void
ppf_fed_engine_changed(struct ppf_fed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->remerge = true;
    f->next_export = 0;
    pthread_mutex_unlock(&f->lock);
}

static uint64_t
us(double t)
{
    return t > 0 ? (uint64_t)(t * 1e6) : 0;
}

void
ppf_fed_status(struct ppf_fed *f, struct ppf_attr_writer *w)
{
    ppf_attr_put_u32(w, PPF_A_FED_ENABLED, f != NULL);
    if (!f) {
        ppf_attr_put_str(w, PPF_A_FED_STATE, "disabled");
        return;
    }
    pthread_mutex_lock(&f->lock);
    ppf_attr_put_str(w, PPF_A_FED_LISTEN, f->listen);
    ppf_attr_put_str(w, PPF_A_FED_STATE, f->state);
    ppf_attr_put_u64(w, PPF_A_FED_EXPORTED, f->exported);
    ppf_attr_put_u64(w, PPF_A_FED_EXPORTED_BYTES, f->outbox_len);
    ppf_attr_put_u64(w, PPF_A_FED_REFUSED, f->refused);
    if (f->refused_error[0])
        ppf_attr_put_str(w, PPF_A_FED_REFUSED_ERROR, f->refused_error);
    for (size_t i = 0; i < f->nout; i++) {
        const struct fed_out *o = &f->out[i];

        ppf_attr_put_str(w, PPF_A_FED_PEER, o->addr);
        ppf_attr_put_u32(w, PPF_A_FED_DIRECTION, PPF_FED_OUT);
        ppf_attr_put_u64(w, PPF_A_FED_LAST_US, us(o->last_ok));
        ppf_attr_put_u64(w, PPF_A_FED_OK, o->ok);
        ppf_attr_put_u64(w, PPF_A_FED_REJECTED, o->rejected);
        ppf_attr_put_u64(w, PPF_A_FED_FAILURES, o->failures);
        if (o->error[0]) {
            ppf_attr_put_str(w, PPF_A_FED_ERROR, o->error);
            ppf_attr_put_u64(w, PPF_A_FED_ERROR_US, us(o->error_time));
        }
    }
    for (size_t i = 0; i < f->nin; i++) {
        const struct fed_in *in = &f->in[i];

        ppf_attr_put_str(w, PPF_A_FED_PEER, in->name);
        ppf_attr_put_u32(w, PPF_A_FED_DIRECTION, PPF_FED_IN);
        ppf_attr_put_u64(w, PPF_A_FED_LAST_US, us(in->last_ok));
        ppf_attr_put_u64(w, PPF_A_FED_OK, in->ok);
        ppf_attr_put_u64(w, PPF_A_FED_REJECTED, in->rejected);
        ppf_attr_put_u64(w, PPF_A_FED_MERGED, in->merged);
        if (in->error[0]) {
            ppf_attr_put_str(w, PPF_A_FED_ERROR, in->error);
            ppf_attr_put_u64(w, PPF_A_FED_ERROR_US, us(in->error_time));
        }
    }
    pthread_mutex_unlock(&f->lock);
}
