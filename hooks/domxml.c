/* The XML half of ppf-qemu-hook: reads the domain XML libvirt writes to
 * the hook's stdin, bounded, and finds the ppf:deploy element of the
 * domain's <metadata> and the disk it names, and the domain's volume disks
 * (<disk type='volume'>: pool and volume, which may be a ppf pool's; the
 * hook looks their records up).  libxml2 is used with the
 * network off, no DTD loading, no entity substitution and its default
 * (non-huge) limits; a document with a DOCTYPE is refused, since libvirt
 * never writes one and entity tricks all need one.  Nothing here touches
 * a file or the peripheral, so every case is unit-tested
 * (tests/unit/test-domxml.c).
 *
 * Built with PPF_HOOK_DLOPEN_XML (ppf-qemu-hook itself), libxml2 is not
 * linked but dlopen()ed on the first parse: libvirt runs the hook three
 * times per domain start, and loading libxml2 with ICU at exec costs more
 * than the rest of the hook on a domain that is not ppf's.  Its default
 * allocator is free() (nothing here calls xmlMemSetup), so free() stands
 * in for xmlFree.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "hooks/hook.h"
#include "ppf/protocol.h"

#ifdef PPF_HOOK_DLOPEN_XML
#include <dlfcn.h>

#define DX_SYM(fn) __typeof__(&fn) fn##_p
static struct {
    void *lib;
    DX_SYM(xmlReadMemory);
    DX_SYM(xmlFreeDoc);
    DX_SYM(xmlDocGetRootElement);
    DX_SYM(xmlGetNoNsProp);
    DX_SYM(xmlNodeGetContent);
    DX_SYM(xmlGetLastError);
    DX_SYM(xmlResetLastError);
    DX_SYM(xmlCleanupParser);
} dx;

#define DX(fn) (dx.fn##_p)
#define DX_FREE(p) free(p)

static int
dx_sym(void *lib, const char *name, void *slot)
{
    void *s = dlsym(lib, name);

    if (!s)
        return -1;
    memcpy(slot, &s, sizeof s);
    return 0;
}

/* Loads libxml2 once.  0, or -1 with err set. */
static int
dx_load(char *err, size_t errlen)
{
    void *lib;

    if (dx.lib)
        return 0;
    lib = dlopen("libxml2.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "cannot load libxml2 (%s); install it", dlerror());
        return -1;
    }
    if (dx_sym(lib, "xmlReadMemory", &dx.xmlReadMemory_p) < 0 ||
        dx_sym(lib, "xmlFreeDoc", &dx.xmlFreeDoc_p) < 0 ||
        dx_sym(lib, "xmlDocGetRootElement", &dx.xmlDocGetRootElement_p) < 0 ||
        dx_sym(lib, "xmlGetNoNsProp", &dx.xmlGetNoNsProp_p) < 0 ||
        dx_sym(lib, "xmlNodeGetContent", &dx.xmlNodeGetContent_p) < 0 ||
        dx_sym(lib, "xmlGetLastError", &dx.xmlGetLastError_p) < 0 ||
        dx_sym(lib, "xmlResetLastError", &dx.xmlResetLastError_p) < 0 ||
        dx_sym(lib, "xmlCleanupParser", &dx.xmlCleanupParser_p) < 0) {
        snprintf(err, errlen, "libxml2 lacks a function the hook needs; update libxml2");
        dlclose(lib);
        memset(&dx, 0, sizeof dx);
        return -1;
    }
    dx.lib = lib;
    return 0;
}

void
ppf_hook_xml_cleanup(void)
{
    if (dx.lib)
        DX(xmlCleanupParser)();
    /* libxml2 stays mapped: its atexit handlers may still run */
}
#else
#define DX(fn) fn
#define DX_FREE(p) xmlFree(p)

static int
dx_load(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return 0;
}

void
ppf_hook_xml_cleanup(void)
{
    xmlCleanupParser();
}
#endif

static void __attribute__((format(printf, 3, 4)))
dx_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int
ppf_hook_read_all(int fd, size_t max, char **bufp, size_t *lenp, char *err, size_t errlen)
{
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap + 1), *nb;

    *bufp = NULL;
    *lenp = 0;
    if (!buf) {
        dx_err(err, errlen, "out of memory reading the domain XML");
        return -1;
    }
    for (;;) {
        ssize_t n;

        if (len == cap) {
            if (cap > max) {
                free(buf);
                dx_err(err, errlen, "the domain XML on stdin is larger than %zu bytes; "
                       "refused", max);
                return -1;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            if (!(nb = realloc(buf, cap + 1))) {
                free(buf);
                dx_err(err, errlen, "out of memory reading the domain XML");
                return -1;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            dx_err(err, errlen, "cannot read the domain XML from stdin: %s", strerror(errno));
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            free(buf);
            dx_err(err, errlen, "the domain XML on stdin is larger than %zu bytes; refused",
                   max);
            return -1;
        }
    }
    buf[len] = '\0';
    *bufp = buf;
    *lenp = len;
    return 0;
}

int
ppf_hook_maybe_ppf(const char *buf, size_t len)
{
    return memmem(buf, len, PPF_HOOK_NS, strlen(PPF_HOOK_NS)) != NULL &&
           memmem(buf, len, "deploy", 6) != NULL;
}

/* A value quoted for a message: at most 64 bytes, control bytes as '?'. */
static const char *
dx_quote(const char *s, char *buf, size_t len)
{
    size_t i, n = strlen(s);

    if (n > 64)
        n = 64;
    if (n > len - 4)
        n = len - 4;
    for (i = 0; i < n; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (strlen(s) > n)
        buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = '\0';
    return buf;
}

static int
dx_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns == NULL &&
           strcmp((const char *)n->name, name) == 0;
}

/* The value of an attribute without namespace, or NULL (xmlFree it). */
static char *
dx_attr(xmlNode *n, const char *name)
{
    return (char *)DX(xmlGetNoNsProp)(n, (const xmlChar *)name);
}

static xmlNode *
dx_child(xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent->children; c; c = c->next)
        if (dx_is(c, name))
            return c;
    return NULL;
}

/* Copies an attribute value into dst (cap bytes); -1 if it does not fit. */
static int
dx_copy(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);

    if (n >= cap)
        return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

/* Reads the attributes of the ppf:deploy element into d.  0 or -1. */
static int
dx_deploy_attrs(xmlNode *el, struct ppf_hook_deploy *d, char *err, size_t errlen)
{
    char q[80];

    d->mode = -1;
    d->ephemeral = -1;
    snprintf(d->tenant, sizeof d->tenant, "default");
    for (xmlAttr *a = el->properties; a; a = a->next) {
        const char *name = (const char *)a->name;
        char *v;
        int bad = 0;

        if (a->ns)
            continue;           /* another namespace's business */
        v = (char *)DX(xmlNodeGetContent)((xmlNode *)a);
        if (!v) {
            dx_err(err, errlen, "out of memory reading ppf:deploy");
            return -1;
        }
        if (strcmp(name, "image") == 0) {
            if (!ppf_name_ok(v) || dx_copy(d->image, sizeof d->image, v) < 0) {
                dx_err(err, errlen, "ppf:deploy image='%s' is not an image name (1 to %d of "
                       "A-Z a-z 0-9 . _ -, not starting with '.'; a name, never a path)",
                       dx_quote(v, q, sizeof q), PPF_HOOK_NAME_MAX);
                bad = 1;
            }
        } else if (strcmp(name, "tenant") == 0) {
            if (!ppf_name_ok(v) || dx_copy(d->tenant, sizeof d->tenant, v) < 0) {
                dx_err(err, errlen, "ppf:deploy tenant='%s' is not a tenant name (1 to %d of "
                       "A-Z a-z 0-9 . _ -, not starting with '.')", dx_quote(v, q, sizeof q),
                       PPF_HOOK_NAME_MAX);
                bad = 1;
            }
        } else if (strcmp(name, "mode") == 0) {
            if (strcmp(v, "overlay") == 0)
                d->mode = 0;
            else if (strcmp(v, "copy") == 0)
                d->mode = 1;
            else {
                dx_err(err, errlen, "ppf:deploy mode='%s': expected overlay or copy",
                       dx_quote(v, q, sizeof q));
                bad = 1;
            }
        } else if (strcmp(name, "ephemeral") == 0) {
            if (strcmp(v, "yes") == 0)
                d->ephemeral = 1;
            else if (strcmp(v, "no") == 0)
                d->ephemeral = 0;
            else {
                dx_err(err, errlen, "ppf:deploy ephemeral='%s': expected yes or no",
                       dx_quote(v, q, sizeof q));
                bad = 1;
            }
        } else if (strcmp(name, "disk") == 0) {
            if (!v[0] || ppf_has_control(v) || dx_copy(d->dev, sizeof d->dev, v) < 0) {
                dx_err(err, errlen, "ppf:deploy disk='%s' is not a disk target name "
                       "(such as vda)", dx_quote(v, q, sizeof q));
                bad = 1;
            }
        } else {
            dx_err(err, errlen, "ppf:deploy has an unknown attribute '%s' (known: image, "
                   "tenant, ephemeral, mode, disk)", dx_quote(name, q, sizeof q));
            bad = 1;
        }
        DX_FREE(v);
        if (bad)
            return -1;
    }
    if (!d->image[0]) {
        dx_err(err, errlen, "ppf:deploy has no image attribute (the name of the image to "
               "deploy)");
        return -1;
    }
    return 0;
}

/* Finds the disk: the one whose <target dev> is d->dev, else the first
 * <disk type='file' device='disk'>; copies its source file and dev. */
static int
dx_find_disk(xmlNode *root, struct ppf_hook_deploy *d, char *err, size_t errlen)
{
    xmlNode *devices = dx_child(root, "devices");
    char q[80];
    int want = d->dev[0] != '\0';

    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        xmlNode *tg, *src;
        char *type, *device, *dev = NULL, *file = NULL;
        int match, rc = 0;

        if (!dx_is(c, "disk"))
            continue;
        type = dx_attr(c, "type");
        device = dx_attr(c, "device");
        if ((tg = dx_child(c, "target")))
            dev = dx_attr(tg, "dev");
        if ((src = dx_child(c, "source")))
            file = dx_attr(src, "file");
        if (want)
            match = dev && strcmp(dev, d->dev) == 0;
        else    /* device defaults to disk in libvirt */
            match = type && strcmp(type, "file") == 0 &&
                    (!device || strcmp(device, "disk") == 0) && file;
        if (match) {
            rc = 1;
            if (!type || strcmp(type, "file") != 0 || (device && strcmp(device, "disk"))) {
                dx_err(err, errlen, "ppf:deploy disk='%s' names a disk that is not "
                       "<disk type='file' device='disk'>", dx_quote(d->dev, q, sizeof q));
                rc = -1;
            } else if (!file || !file[0]) {
                dx_err(err, errlen, "disk %s has no <source file=...>; say where the disk "
                       "is to be created", dx_quote(dev ? dev : "?", q, sizeof q));
                rc = -1;
            } else if (file[0] != '/' || ppf_has_control(file) ||
                       dx_copy(d->target, sizeof d->target, file) < 0) {
                dx_err(err, errlen, "disk %s: source file '%s' is not an absolute path of at "
                       "most %d bytes", dx_quote(dev ? dev : "?", q, sizeof q), file,
                       PPF_HOOK_PATH_MAX);
                rc = -1;
            } else if (dev && dx_copy(d->dev, sizeof d->dev, dev) < 0) {
                d->dev[0] = '\0';       /* only used in messages */
            }
        }
        DX_FREE(type);
        DX_FREE(device);
        DX_FREE(dev);
        DX_FREE(file);
        if (rc)
            return rc < 0 ? -1 : 0;
    }
    if (want)
        dx_err(err, errlen, "ppf:deploy disk='%s': the domain has no disk with <target "
               "dev='%s'>", dx_quote(d->dev, q, sizeof q), dx_quote(d->dev, q, sizeof q));
    else
        dx_err(err, errlen, "ppf:deploy: the domain has no <disk type='file' device='disk'> "
               "with a <source file=...> to deploy to");
    return -1;
}

/* libxml2's last error as one line. */
static void
dx_xml_error(char *err, size_t errlen)
{
    const xmlError *e = DX(xmlGetLastError)();
    char msg[256];
    size_t n;

    snprintf(msg, sizeof msg, "%s", e && e->message ? e->message : "unknown error");
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)msg[i] < 0x20)
            msg[i] = ' ';
    dx_err(err, errlen, "cannot parse the domain XML (line %d): %s", e ? e->line : 0, msg);
}

int
ppf_hook_next_pool(const char *buf, size_t len, size_t *off, char *name, size_t cap)
{
    while (*off < len) {
        const char *p = memmem(buf + *off, len - *off, "pool=", 5), *end;
        size_t n;

        if (!p)
            break;
        *off = (size_t)(p - buf) + 5;
        if (*off >= len || (buf[*off] != '\'' && buf[*off] != '"'))
            continue;
        end = memchr(buf + *off + 1, buf[*off], len - *off - 1);
        if (!end)
            break;
        n = (size_t)(end - (buf + *off + 1));
        if (n >= cap)
            continue;
        memcpy(name, buf + *off + 1, n);
        name[n] = '\0';
        *off = (size_t)(end - buf) + 1;
        if (ppf_name_ok(name))
            return 1;
    }
    *off = len;
    return 0;
}

/* Appends the domain's <disk type='volume' device='disk'> whose pool and
 * volume are ppf names to dom->vols.  0, or -1 (out of memory). */
static int
dx_find_vols(xmlNode *root, struct ppf_hook_domain *dom, char *err, size_t errlen)
{
    xmlNode *devices = dx_child(root, "devices");
    size_t cap = 0;

    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        struct ppf_hook_voldisk *v;
        xmlNode *src, *tg, *drv;
        char *type, *device, *pool = NULL, *vol = NULL, *dev = NULL, *fmt = NULL;
        int ours, rc = 0;

        if (!dx_is(c, "disk"))
            continue;
        type = dx_attr(c, "type");
        device = dx_attr(c, "device");
        if ((src = dx_child(c, "source"))) {
            pool = dx_attr(src, "pool");
            vol = dx_attr(src, "volume");
        }
        if ((tg = dx_child(c, "target")))
            dev = dx_attr(tg, "dev");
        if ((drv = dx_child(c, "driver")))
            fmt = dx_attr(drv, "type");
        ours = type && strcmp(type, "volume") == 0 && (!device || !strcmp(device, "disk")) &&
               pool && vol && ppf_name_ok(pool) && ppf_name_ok(vol);
        if (ours && dom->nvols == cap) {
            size_t nc = cap ? 2 * cap : 4;

            if (!(v = realloc(dom->vols, nc * sizeof *v))) {
                dx_err(err, errlen, "out of memory reading the domain's disks");
                rc = -1;
            } else {
                dom->vols = v;
                cap = nc;
            }
        }
        if (ours && rc == 0) {
            v = &dom->vols[dom->nvols++];
            memset(v, 0, sizeof *v);
            dx_copy(v->pool, sizeof v->pool, pool);
            dx_copy(v->volume, sizeof v->volume, vol);
            if (dev && !ppf_has_control(dev))
                dx_copy(v->dev, sizeof v->dev, dev);
            if (fmt && (ppf_has_control(fmt) || dx_copy(v->format, sizeof v->format, fmt) < 0))
                snprintf(v->format, sizeof v->format, "?");     /* not one ppf makes */
        }
        DX_FREE(type);
        DX_FREE(device);
        DX_FREE(pool);
        DX_FREE(vol);
        DX_FREE(dev);
        DX_FREE(fmt);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Parses buf into dom: the ppf:deploy metadata (has_deploy) and, with
 * vols, the volume disks.  0 or -1 (err set). */
static int
dx_parse(const char *buf, size_t len, int vols, struct ppf_hook_domain *dom, char *err,
         size_t errlen)
{
    /* no XML_PARSE_NOENT (no substitution), no DTDLOAD/DTDATTR, no HUGE */
    const int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                     XML_PARSE_NOCDATA;
    struct ppf_hook_deploy *d = &dom->deploy;
    xmlDoc *doc;
    xmlNode *root, *meta, *u, *el = NULL;
    char *uuid = NULL, q[80];
    int rc = -1;

    memset(dom, 0, sizeof *dom);
    d->mode = d->ephemeral = -1;
    if (err && errlen)
        err[0] = '\0';
    if (len > PPF_HOOK_XML_MAX || len > (size_t)INT32_MAX) {
        dx_err(err, errlen, "the domain XML is larger than %u bytes; refused",
               PPF_HOOK_XML_MAX);
        return -1;
    }
    if (!vols && !ppf_hook_maybe_ppf(buf, len))
        return 0;
    if (len == 0)
        return 0;
    /* before libxml2 sees the internal subset at all */
    if (memmem(buf, len, "<!DOCTYPE", 9)) {
        dx_err(err, errlen, "the domain XML carries a DOCTYPE, which libvirt never writes; "
               "refused");
        return -1;
    }

    if (dx_load(err, errlen) < 0)
        return -1;
    DX(xmlResetLastError)();
    doc = DX(xmlReadMemory)(buf, (int)len, "domain.xml", NULL, opts);
    if (!doc) {
        dx_xml_error(err, errlen);
        return -1;
    }
    if (doc->intSubset || doc->extSubset) {
        dx_err(err, errlen, "the domain XML carries a DOCTYPE, which libvirt never writes; "
               "refused");
        goto out;
    }
    root = DX(xmlDocGetRootElement)(doc);
    if (!root || !dx_is(root, "domain")) {
        dx_err(err, errlen, "the XML on stdin is not a libvirt <domain>");
        goto out;
    }
    if ((u = dx_child(root, "uuid")) && (uuid = (char *)DX(xmlNodeGetContent)(u)) &&
        ppf_uuid_ok(uuid))
        memcpy(dom->uuid, uuid, PPF_HOOK_UUID_LEN + 1);
    meta = dx_child(root, "metadata");
    for (xmlNode *c = meta ? meta->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || !c->ns || !c->ns->href ||
            strcmp((const char *)c->ns->href, PPF_HOOK_NS) != 0)
            continue;
        if (strcmp((const char *)c->name, "deploy") != 0) {
            dx_err(err, errlen, "unknown element '%.64s' in ppf's namespace %s (expected "
                   "deploy)", (const char *)c->name, PPF_HOOK_NS);
            goto out;
        }
        if (el) {
            dx_err(err, errlen, "more than one ppf:deploy in <metadata>; a domain has one");
            goto out;
        }
        el = c;
    }
    if (el) {
        if (dx_deploy_attrs(el, d, err, errlen) < 0)
            goto out;
        if (!dom->uuid[0]) {
            dx_err(err, errlen, "the domain has no usable <uuid> (found '%s')",
                   uuid ? dx_quote(uuid, q, sizeof q) : "none");
            goto out;
        }
        memcpy(d->uuid, dom->uuid, sizeof d->uuid);
        if (dx_find_disk(root, d, err, errlen) < 0)
            goto out;
        dom->has_deploy = 1;
    }
    if (vols && dx_find_vols(root, dom, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    DX_FREE(uuid);
    DX(xmlFreeDoc)(doc);
    return rc;
}

int
ppf_hook_parse_domain_full(const char *buf, size_t len, struct ppf_hook_domain *dom,
                           char *err, size_t errlen)
{
    return dx_parse(buf, len, 1, dom, err, errlen);
}

void
ppf_hook_domain_free(struct ppf_hook_domain *dom)
{
    if (!dom)
        return;
    free(dom->vols);
    dom->vols = NULL;
    dom->nvols = 0;
}

int
ppf_hook_parse_domain(const char *buf, size_t len, struct ppf_hook_deploy *d, char *err,
                      size_t errlen)
{
    struct ppf_hook_domain dom;
    int rc = dx_parse(buf, len, 0, &dom, err, errlen);

    if (rc == 0 && dom.has_deploy) {
        *d = dom.deploy;
        return 1;
    }
    if (rc < 0)
        *d = dom.deploy;        /* what was read before the problem */
    else
        memset(d, 0, sizeof *d), d->mode = d->ephemeral = -1;
    return rc;
}
