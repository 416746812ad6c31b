/* Where image bytes come from: a local file (pread) or an https:// URL
 * (libcurl range requests, certificate verification always on, resumable
 * retries with back-off, timeouts).  Each thread reads through its own
 * struct img_conn, so reads run in parallel without locks.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "image/image-priv.h"

enum img_src_kind { IMG_SRC_FILE, IMG_SRC_HTTPS };

struct img_src {
    enum img_src_kind kind;
    char *name;                 /* as the user gave it, for messages */
    int fd;
    uint64_t size;
    char *ca_file, *pinned;
    long timeout_s;
    unsigned retries;
    struct img_conn *main;      /* used when a caller passes no connection */
};

struct img_conn {
    struct img_src *src;
    CURL *h;
    char errbuf[CURL_ERROR_SIZE];
    /* the transfer in progress */
    uint8_t *buf;
    size_t want, got;
    int overflow;
    uint64_t total;             /* from Content-Range, 0 if none */
};

static pthread_once_t img_curl_once = PTHREAD_ONCE_INIT;
static CURLcode img_curl_init_rc;

static void
img_curl_init(void)
{
    img_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

uint64_t img_src_size(const struct img_src *s) { return s->size; }
const char *img_src_name(const struct img_src *s) { return s->name; }

static size_t
img_curl_write(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct img_conn *c = opaque;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 206)
        return n;               /* an error page or a whole file: judged by its status */
    if (n > c->want - c->got) {
        c->overflow = 1;        /* more than we asked for: refuse, never overrun */
        return 0;
    }
    memcpy(c->buf + c->got, data, n);
    c->got += n;
    return n;
}

static size_t
img_curl_header(char *data, size_t size, size_t nmemb, void *opaque)
{
    struct img_conn *c = opaque;
    size_t n = size * nmemb;
    char line[256];
    const char *slash;

    if (n >= sizeof line || n < 14 || strncasecmp(data, "content-range:", 14) != 0)
        return n;
    memcpy(line, data, n);
    line[n] = '\0';
    slash = strchr(line, '/');
    if (slash && slash[1] >= '0' && slash[1] <= '9')
        c->total = strtoull(slash + 1, NULL, 10);
    return n;
}

struct img_conn *
img_conn_new(struct img_src *s, struct ppf_img_err *err)
{
    struct img_conn *c = calloc(1, sizeof *c);
    CURL *h;
    int ok = 1;

    if (!c) {
        img_fail_sys(err, ENOMEM, "%s: allocating a connection", s->name);
        return NULL;
    }
    c->src = s;
    if (s->kind != IMG_SRC_HTTPS)
        return c;
    c->h = h = curl_easy_init();
    if (!h) {
        free(c);
        img_fail(err, PPF_IMG_EFAIL, "%s: cannot create a libcurl handle", s->name);
        return NULL;
    }
#define SET(opt, val) ok &= curl_easy_setopt(h, opt, val) == CURLE_OK
    SET(CURLOPT_URL, s->name);
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_CONNECTTIMEOUT, s->timeout_s);
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SET(CURLOPT_LOW_SPEED_TIME, s->timeout_s);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_WRITEFUNCTION, img_curl_write);
    SET(CURLOPT_WRITEDATA, c);
    SET(CURLOPT_HEADERFUNCTION, img_curl_header);
    SET(CURLOPT_HEADERDATA, c);
    SET(CURLOPT_USERAGENT, "ppf-image/" PACKAGE_VERSION);
    if (s->ca_file)
        SET(CURLOPT_CAINFO, s->ca_file);
    if (s->pinned)
        SET(CURLOPT_PINNEDPUBLICKEY, s->pinned);
#undef SET
    if (!ok) {
        img_conn_free(c);
        img_fail(err, PPF_IMG_EFAIL, "%s: this libcurl lacks an option ppf needs "
                 "(https only, pinned keys): upgrade libcurl", s->name);
        return NULL;
    }
    return c;
}

void
img_conn_free(struct img_conn *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    free(c);
}

/* One ranged GET of [off, off+len) into buf+got.  0 done, 1 retry, -1 fail. */
static int
img_https_try(struct img_conn *c, uint64_t off, size_t len, struct ppf_img_err *err)
{
    struct img_src *s = c->src;
    char range[64];
    CURLcode rc;
    long status = 0;

    snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, off + c->got, off + len - 1);
    c->errbuf[0] = '\0';
    c->overflow = 0;
    curl_easy_setopt(c->h, CURLOPT_RANGE, range);
    rc = curl_easy_perform(c->h);
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (c->overflow)
        return img_fail(err, PPF_IMG_EIO, "%s: server sent more than the %zu bytes asked "
                        "for at %" PRIu64 " (does it ignore range requests?)",
                        s->name, len, off);
    if (rc == CURLE_OK && status == 206)
        return c->got == len ? 0 : 1;
    if (rc == CURLE_OK && status == 200)
        return img_fail(err, PPF_IMG_EIO, "%s: server ignores range requests: serve the "
                        "image from a server that supports them", s->name);
    if (rc == CURLE_OK && status == 416)
        return img_fail(err, PPF_IMG_EBAD, "%s: image is truncated (no bytes at %" PRIu64 ")",
                        s->name, off + c->got);
    if (rc == CURLE_OK && status >= 400 && status < 500)
        return img_fail(err, PPF_IMG_EIO, "%s: server answered HTTP %ld", s->name, status);
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
        rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_SSL_CERTPROBLEM ||
        rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        return img_fail(err, PPF_IMG_EIO, "%s: %s%s%s%s", s->name, curl_easy_strerror(rc),
                        c->errbuf[0] ? " (" : "", c->errbuf, c->errbuf[0] ? ")" : "");
    if (rc == CURLE_OK)
        snprintf(c->errbuf, sizeof c->errbuf, "HTTP %ld", status);
    else if (!c->errbuf[0])
        snprintf(c->errbuf, sizeof c->errbuf, "%s", curl_easy_strerror(rc));
    return 1;
}

static int
img_https_read(struct img_conn *c, void *buf, size_t len, uint64_t off, struct ppf_img_err *err)
{
    struct img_src *s = c->src;

    c->buf = buf;
    c->want = len;
    c->got = 0;
    for (unsigned attempt = 0;; attempt++) {
        size_t before = c->got;
        int r = img_https_try(c, off, len, err);

        if (r <= 0)
            return r;
        if (c->got > before)
            attempt = 0;        /* progress: resume from where it stopped */
        if (attempt >= s->retries)
            return img_fail(err, PPF_IMG_EIO, "%s: fetching %zu bytes at %" PRIu64 " failed "
                            "after %u attempts (%s): check the network and the server",
                            s->name, len, off, attempt + 1, c->errbuf);
        struct timespec ts = { 0, (200L << (attempt < 3 ? attempt : 3)) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

int
img_src_read(struct img_src *s, struct img_conn *c, void *buf, size_t len, uint64_t off,
             struct ppf_img_err *err)
{
    size_t done = 0;

    if (off > s->size || len > s->size - off)
        return img_fail(err, PPF_IMG_EBAD, "%s: image is truncated (%zu bytes at %" PRIu64
                        " past its end)", s->name, len, off);
    if (s->kind == IMG_SRC_HTTPS)
        return img_https_read(c ? c : s->main, buf, len, off, err);
    while (done < len) {
        ssize_t n = pread(s->fd, (uint8_t *)buf + done, len - done, off + done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return img_fail_sys(err, errno, "%s: reading %zu bytes at %" PRIu64,
                                s->name, len, off);
        if (n == 0)
            return img_fail(err, PPF_IMG_EBAD, "%s: image is truncated (end of file at %"
                            PRIu64 ")", s->name, off + done);
        done += n;
    }
    return 0;
}

static int
img_https_open(struct img_src *s, struct ppf_img_err *err)
{
    uint8_t byte;

    pthread_once(&img_curl_once, img_curl_init);
    if (img_curl_init_rc != CURLE_OK)
        return img_fail(err, PPF_IMG_EFAIL, "%s: libcurl failed to initialise: %s",
                        s->name, curl_easy_strerror(img_curl_init_rc));
    s->main = img_conn_new(s, err);
    if (!s->main)
        return -1;
    /* Learn the size from Content-Range: a one-byte range. */
    s->size = 1;
    if (img_https_read(s->main, &byte, 1, 0, err) < 0)
        return -1;
    if (s->main->total == 0)
        return img_fail(err, PPF_IMG_EIO, "%s: server sent no Content-Range with its size",
                        s->name);
    s->size = s->main->total;
    return 0;
}

int
img_src_open(const char *source, const struct ppf_img_open_opts *opts, struct img_src **out,
             struct ppf_img_err *err)
{
    struct img_src *s;
    const char *path = source;
    struct stat st;

    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(source))) {
        free(s);
        return img_fail_sys(err, ENOMEM, "%s: opening", source);
    }
    s->fd = -1;
    s->timeout_s = opts && opts->timeout_s > 0 ? opts->timeout_s : 30;
    s->retries = opts && opts->retries ? opts->retries : 3;
    if ((opts && opts->ca_file && !(s->ca_file = strdup(opts->ca_file))) ||
        (opts && opts->pinned_pubkey && !(s->pinned = strdup(opts->pinned_pubkey)))) {
        img_src_close(s);
        return img_fail_sys(err, ENOMEM, "%s: opening", source);
    }
    if (strncasecmp(source, "https://", 8) == 0) {
        s->kind = IMG_SRC_HTTPS;
        if (img_https_open(s, err) < 0) {
            img_src_close(s);
            return -1;
        }
        *out = s;
        return 0;
    }
    if (strncmp(source, "file://", 7) == 0) {
        path = source + 7;
        if (path[0] != '/') {
            img_src_close(s);
            return img_fail(err, PPF_IMG_EUSAGE, "%s: a file URL needs an absolute path "
                            "(file:///dir/x.ppfi)", source);
        }
    } else if (strstr(source, "://")) {
        img_src_close(s);
        return img_fail(err, PPF_IMG_EUSAGE, "%s: unsupported URL scheme: use a path, "
                        "file:///PATH or https://", source);
    }
    s->kind = IMG_SRC_FILE;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) < 0) {
        int e = errno;
        img_src_close(s);
        return img_fail_sys(err, e, "%s: cannot open the image", source);
    }
    if (!S_ISREG(st.st_mode)) {
        img_src_close(s);
        return img_fail(err, PPF_IMG_EUSAGE, "%s: not a regular file", source);
    }
    s->size = st.st_size;
    *out = s;
    return 0;
}

void
img_src_close(struct img_src *s)
{
    if (!s)
        return;
    img_conn_free(s->main);
    if (s->fd >= 0)
        close(s->fd);
    free(s->ca_file);
    free(s->pinned);
    free(s->name);
    free(s);
}
