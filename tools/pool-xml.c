/* The XML of ppf pools (see pool-xml.h and ppf-pool(5)).  Every document
 * is parsed the same guarded way: at most PPF_POOL_XML_MAX bytes, no
 * DOCTYPE (so no entity can be declared, let alone expanded), no network,
 * no DTD loading, libxml2's own reporting off and its errors collected as
 * "FILE:LINE: message" lines.  A pool-define document is checked in three
 * steps: the mistakes people make most (not a pool, not type dir, no ppf
 * element) get a message of their own, then schemas/ppf-pool.rng, then the
 * values no schema can check.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "policy/policy.h"
#include "ppf/protocol.h"
#include "tools/pool-xml.h"

#define PX_MAX_ERRORS 6         /* schema messages reported per document */

/* The guarded parse options: no NOENT (no substitution), no DTDLOAD or
 * DTDATTR, no HUGE, no network; errors are collected, not printed. */
#define PX_PARSE_OPTS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | \
                       XML_PARSE_NOCDATA)

/* ---- messages ----------------------------------------------------------- */

/* Collects messages into err, one per line, bounded. */
struct px_err {
    char *buf;
    size_t len;
    size_t used;
    const char *file;
    unsigned n;
};

static void
px_init(struct px_err *e, char *buf, size_t len, const char *file)
{
    e->buf = buf;
    e->len = len;
    e->used = 0;
    e->file = file;
    e->n = 0;
    if (len)
        buf[0] = '\0';
}

static void __attribute__((format(printf, 3, 4)))
px_add(struct px_err *e, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int k;

    e->n++;
    if (!e->len || e->used + 1 >= e->len)
        return;
    if (e->used)
        e->buf[e->used++] = '\n';
    if (line)
        k = snprintf(e->buf + e->used, e->len - e->used, "%s:%u: ", e->file, line);
    else
        k = snprintf(e->buf + e->used, e->len - e->used, "%s: ", e->file);
    if (k > 0)
        e->used = e->used + (size_t)k < e->len ? e->used + (size_t)k : e->len - 1;
    va_start(ap, fmt);
    k = vsnprintf(e->buf + e->used, e->len - e->used, fmt, ap);
    va_end(ap);
    if (k > 0)
        e->used = e->used + (size_t)k < e->len ? e->used + (size_t)k : e->len - 1;
}

/* libxml2's structured errors (parser and RelaxNG) land here. */
static void
px_xml_error(void *data, xmlErrorPtr xe)
{
    struct px_err *e = data;
    char msg[512];
    size_t n;

    if (!xe || xe->level == XML_ERR_WARNING)
        return;
    if (e->n >= PX_MAX_ERRORS) {
        e->n++;
        return;
    }
    snprintf(msg, sizeof msg, "%s", xe->message ? xe->message : "invalid XML");
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)msg[i] < 0x20)
            msg[i] = ' ';
    px_add(e, xe->line > 0 ? (unsigned)xe->line : 0, "%s", msg);
}

/* Line of s at offset off (1-based). */
static unsigned
px_line_at(const char *s, size_t off)
{
    unsigned line = 1;

    for (size_t i = 0; i < off; i++)
        if (s[i] == '\n')
            line++;
    return line;
}

static unsigned
px_node_line(xmlNodePtr n)
{
    long l = n ? xmlGetLineNo(n) : 0;

    return l > 0 && l < 1000000000L ? (unsigned)l : 0;
}

/* ---- the guarded parse -------------------------------------------------- */

/* Parses buf into *doc.  what ("pool XML", "state file") goes into the
 * messages.  0, or -1 with the problem added to e. */
static int
px_parse(const char *buf, size_t len, struct px_err *e, const char *what, xmlDocPtr *doc)
{
    xmlParserCtxtPtr ctxt;
    const char *p;

    *doc = NULL;
    if (len > PPF_POOL_XML_MAX) {
        px_add(e, 0, "%zu bytes; a %s holds at most %d bytes", len, what, PPF_POOL_XML_MAX);
        return -1;
    }
    if (len == 0) {
        px_add(e, 0, "empty file; a %s is an XML document (see ppf-pool(5))", what);
        return -1;
    }
    /* refused before parsing: a DTD could declare entities (billion laughs,
     * external files); libvirt never needs one */
    if ((p = memmem(buf, len, "<!DOCTYPE", 9)) || (p = memmem(buf, len, "<!ENTITY", 8))) {
        px_add(e, px_line_at(buf, (size_t)(p - buf)), "a %s may not carry a DOCTYPE or "
               "entity declarations; delete the <!DOCTYPE ...> part", what);
        return -1;
    }
    if (!(ctxt = xmlNewParserCtxt())) {
        px_add(e, 0, "out of memory parsing the %s", what);
        return -1;
    }
    *doc = xmlCtxtReadMemory(ctxt, buf, (int)len, e->file, NULL, PX_PARSE_OPTS);
    if (!*doc || !ctxt->wellFormed) {
        xmlErrorPtr xe = xmlCtxtGetLastError(ctxt);

        if (xe && xe->message)
            px_xml_error(e, xe);
        else
            px_add(e, 0, "not well-formed XML");
        xmlFreeDoc(*doc);
        *doc = NULL;
        xmlFreeParserCtxt(ctxt);
        return -1;
    }
    xmlFreeParserCtxt(ctxt);
    if ((*doc)->intSubset || (*doc)->extSubset) {
        px_add(e, 1, "a %s may not carry a DOCTYPE; delete it", what);
        xmlFreeDoc(*doc);
        *doc = NULL;
        return -1;
    }
    return 0;
}

static int
px_is(xmlNodePtr n, const char *ns, const char *name)
{
    if (!n || n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, BAD_CAST name))
        return 0;
    if (!ns)
        return n->ns == NULL || n->ns->href == NULL || n->ns->href[0] == '\0';
    return n->ns && xmlStrEqual(n->ns->href, BAD_CAST ns);
}

static xmlNodePtr
px_child(xmlNodePtr parent, const char *ns, const char *name)
{
    for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
        if (px_is(n, ns, name))
            return n;
    return NULL;
}

/* Copies an attribute (no namespace) into buf; 1 copied, 0 absent, -1 too
 * long (reported). */
static int
px_attr(xmlNodePtr n, const char *name, char *buf, size_t len, struct px_err *e)
{
    xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);
    size_t l;

    if (!v)
        return 0;
    l = strlen((const char *)v);
    if (l >= len) {
        px_add(e, px_node_line(n), "%s=\"...\" is %zu bytes long; at most %zu", name, l,
               len - 1);
        xmlFree(v);
        return -1;
    }
    memcpy(buf, v, l + 1);
    xmlFree(v);
    return 1;
}

/* Copies the text of n into buf; 0, or -1 missing/too long (reported). */
static int
px_text(xmlNodePtr n, const char *what, char *buf, size_t len, struct px_err *e)
{
    xmlChar *v = xmlNodeGetContent(n);
    size_t l;

    if (!v) {
        px_add(e, px_node_line(n), "%s is missing", what);
        return -1;
    }
    l = strlen((const char *)v);
    if (l >= len) {
        px_add(e, px_node_line(n), "%s is %zu bytes long; at most %zu", what, l, len - 1);
        xmlFree(v);
        return -1;
    }
    memcpy(buf, v, l + 1);
    xmlFree(v);
    return 0;
}

/* Reads the attributes of a ppf:pool element into conf. */
static int
px_read_ppf(xmlNodePtr n, struct ppf_pool_conf *conf, struct px_err *e)
{
    char vol[16] = "";
    int bad = 0;

    conf->line = px_node_line(n);
    bad |= px_attr(n, "store", conf->store, sizeof conf->store, e) < 0;
    if (px_attr(n, "tenant", conf->tenant, sizeof conf->tenant, e) == 0)
        snprintf(conf->tenant, sizeof conf->tenant, "%s", PPF_POOL_DEFAULT_TENANT);
    bad |= px_attr(n, "quota", conf->quota_text, sizeof conf->quota_text, e) < 0;
    bad |= px_attr(n, "keyfile", conf->keyfile, sizeof conf->keyfile, e) < 0;
    bad |= px_attr(n, "volumes", vol, sizeof vol, e) < 0;
    if (bad)
        return -1;
    if (!vol[0] || strcmp(vol, "prepared") == 0)
        conf->volumes = PPF_POOL_VOLUMES_PREPARED;
    else if (strcmp(vol, "none") == 0)
        conf->volumes = PPF_POOL_VOLUMES_NONE;
    else {
        px_add(e, conf->line, "volumes=\"%s\": expected prepared or none", vol);
        return -1;
    }
    if (conf->quota_text[0] &&
        (ppf_policy_parse_size(conf->quota_text, &conf->quota) < 0 || conf->quota == 0)) {
        px_add(e, conf->line, "quota=\"%s\": expected a size above 0 such as 64GiB, 500G "
               "or 1TB (as in the policy)", conf->quota_text);
        return -1;
    }
    return 0;
}

/* ---- checks ------------------------------------------------------------- */

static int
px_abs_path_ok(const char *p)
{
    if (p[0] != '/')
        return 0;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return 0;
    /* no "." or ".." component: a path names one place */
    for (const char *c = p; (c = strchr(c, '/')); c++) {
        if ((c[1] == '.' && (c[2] == '/' || c[2] == '\0')) ||
            (c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0')))
            return 0;
    }
    return 1;
}

static int
px_check(const struct ppf_pool_conf *c, struct px_err *e)
{
    unsigned before = e->n;
    unsigned line = c->line;

    if (!ppf_name_ok(c->name))
        px_add(e, c->name_line, "pool name '%s': a ppf pool's name is 1 to %d of A-Z a-z 0-9 . _ - "
               "not starting with '.'; rename the <name>", c->name, PPF_POOL_NAME_MAX);
    if (!px_abs_path_ok(c->target) || strcmp(c->target, "/") == 0)
        px_add(e, c->target_line, "target path '%s': expected an absolute directory path "
               "without '.' or '..' components (and not /)", c->target);
    if (!ppf_name_ok(c->store))
        px_add(e, line, "store=\"%s\": not a store name (1 to %d of A-Z a-z 0-9 . _ -, not "
               "starting with '.'); use a name from the policy's stores:", c->store,
               PPF_POOL_NAME_MAX);
    if (!ppf_name_ok(c->tenant))
        px_add(e, line, "tenant=\"%s\": not a tenant name (1 to %d of A-Z a-z 0-9 . _ -, "
               "not starting with '.')", c->tenant, PPF_POOL_NAME_MAX);
    if (c->quota_text[0]) {
        uint64_t q;

        if (ppf_policy_parse_size(c->quota_text, &q) < 0 || q == 0 || q != c->quota)
            px_add(e, line, "quota=\"%s\": expected a size above 0 such as 64GiB",
                   c->quota_text);
    } else if (c->quota) {
        px_add(e, line, "a quota without its text");
    }
    if (c->keyfile[0] && !px_abs_path_ok(c->keyfile))
        px_add(e, line, "keyfile=\"%s\": expected an absolute path without '.' or '..' "
               "components", c->keyfile);
    if (c->uuid[0] && strlen(c->uuid) != 36)
        px_add(e, 0, "uuid '%s' is not a UUID", c->uuid);
    return e->n == before ? 0 : -1;
}

int
ppf_pool_conf_check(const struct ppf_pool_conf *conf, const char *file, char *err,
                    size_t errlen)
{
    struct px_err e;

    px_init(&e, err, errlen, file);
    return px_check(conf, &e);
}

int
ppf_pool_conf_check_keyfile(const struct ppf_pool_conf *conf, const char *file, char *err,
                            size_t errlen)
{
    struct px_err e;
    struct stat st;

    px_init(&e, err, errlen, file);
    if (!conf->keyfile[0])
        return 0;
    if (stat(conf->keyfile, &st) < 0) {
        px_add(&e, conf->line, "keyfile=\"%s\": %s; create the tenant's key (head -c %d "
               "/dev/urandom > FILE; chmod 600 FILE) or fix the path", conf->keyfile,
               strerror(errno), PPF_POOL_KEY_SIZE);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        px_add(&e, conf->line, "keyfile=\"%s\" is not a regular file; name the key file "
               "itself", conf->keyfile);
        return -1;
    }
    if (st.st_size != PPF_POOL_KEY_SIZE) {
        px_add(&e, conf->line, "keyfile=\"%s\" is %lld bytes; an AES-256 key file holds "
               "exactly %d bytes", conf->keyfile, (long long)st.st_size, PPF_POOL_KEY_SIZE);
        return -1;
    }
    if (st.st_mode & 077) {
        px_add(&e, conf->line, "keyfile=\"%s\" is open to group or others (mode %04o); run: "
               "chmod 600 %s", conf->keyfile, (unsigned)(st.st_mode & 07777), conf->keyfile);
        return -1;
    }
    return 0;
}

/* ---- split -------------------------------------------------------------- */

static int
px_validate(xmlDocPtr doc, const char *schema, struct px_err *e)
{
    xmlRelaxNGParserCtxtPtr pctxt;
    xmlRelaxNGValidCtxtPtr vctxt;
    xmlRelaxNGPtr rng;
    struct px_err se;
    char serr[1024];
    int r;

    px_init(&se, serr, sizeof serr, schema);
    if (access(schema, R_OK) < 0) {
        px_add(e, 0, "cannot read the schema %s: %s; install ppf (make install) or set "
               "PPF_SCHEMA_DIR to the directory holding " PPF_POOL_SCHEMA, schema,
               strerror(errno));
        return -1;
    }
    if (!(pctxt = xmlRelaxNGNewParserCtxt(schema))) {
        px_add(e, 0, "out of memory loading the schema %s", schema);
        return -1;
    }
    xmlRelaxNGSetParserStructuredErrors(pctxt, px_xml_error, &se);
    rng = xmlRelaxNGParse(pctxt);
    xmlRelaxNGFreeParserCtxt(pctxt);
    if (!rng) {
        px_add(e, 0, "the schema %s is broken (%s); reinstall ppf", schema,
               serr[0] ? serr : "no detail");
        return -1;
    }
    if (!(vctxt = xmlRelaxNGNewValidCtxt(rng))) {
        xmlRelaxNGFree(rng);
        px_add(e, 0, "out of memory validating against %s", schema);
        return -1;
    }
    xmlRelaxNGSetValidStructuredErrors(vctxt, px_xml_error, e);
    r = xmlRelaxNGValidateDoc(vctxt, doc);
    xmlRelaxNGFreeValidCtxt(vctxt);
    xmlRelaxNGFree(rng);
    if (r != 0) {
        if (e->n == 0)
            px_add(e, 0, "does not validate against %s", schema);
        px_add(e, 0, "not a valid ppf pool (%s); see ppf-pool(5)", schema);
        return -1;
    }
    return 0;
}

/* Serializes n (no XML declaration) into a malloc'd string ending in a
 * newline. */
static char *
px_dump(xmlDocPtr doc, xmlNodePtr n)
{
    xmlBufferPtr b = xmlBufferCreate();
    char *out = NULL;
    int k;

    if (!b)
        return NULL;
    k = xmlNodeDump(b, doc, n, 0, 0);
    if (k >= 0) {
        size_t l = (size_t)xmlBufferLength(b);

        if ((out = malloc(l + 2))) {
            memcpy(out, xmlBufferContent(b), l);
            out[l] = '\n';
            out[l + 1] = '\0';
        }
    }
    xmlBufferFree(b);
    return out;
}

/* Removes n and the indentation before it. */
static void
px_remove(xmlNodePtr n)
{
    xmlNodePtr prev = n->prev;

    if (prev && prev->type == XML_TEXT_NODE && xmlIsBlankNode(prev)) {
        xmlUnlinkNode(prev);
        xmlFreeNode(prev);
    }
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

/* Drops ppf's namespace declaration from n (only the ppf element used it). */
static void
px_drop_ns(xmlNodePtr n)
{
    for (xmlNsPtr *pp = &n->nsDef; *pp;) {
        xmlNsPtr ns = *pp;

        if (ns->href && xmlStrEqual(ns->href, BAD_CAST PPF_POOL_NS)) {
            *pp = ns->next;
            ns->next = NULL;
            xmlFreeNs(ns);
        } else {
            pp = &ns->next;
        }
    }
}

/* Refuses elements of other namespaces below root (libvirt would drop them
 * silently) and ppf elements anywhere but as children of root.  0 or -1. */
static int
px_foreign(xmlNodePtr root, xmlNodePtr n, struct px_err *e)
{
    for (xmlNodePtr k = n->children; k; k = k->next) {
        if (k->type != XML_ELEMENT_NODE)
            continue;
        if (k->ns && k->ns->href && xmlStrEqual(k->ns->href, BAD_CAST PPF_POOL_NS)) {
            if (n != root) {
                px_add(e, px_node_line(k), "<%s%s%s> must be a child of <pool>, not of <%s>",
                       k->ns->prefix ? (const char *)k->ns->prefix : "",
                       k->ns->prefix ? ":" : "", (const char *)k->name,
                       (const char *)n->name);
                return -1;
            }
        } else if (k->ns && k->ns->href && k->ns->href[0]) {
            px_add(e, px_node_line(k), "<%s> is in the namespace %s: libvirt drops such "
                   "elements from pool XML without a word, so ppf refuses them; remove it",
                   (const char *)k->name, (const char *)k->ns->href);
            return -1;
        }
        if (px_foreign(root, k, e) < 0)
            return -1;
    }
    return 0;
}

static int
px_split_doc(xmlDocPtr doc, const char *schema, struct ppf_pool_conf *conf, char **plain,
             struct px_err *e)
{
    xmlNodePtr root = xmlDocGetRootElement(doc), ppf = NULL, n, target, path;
    char type[32] = "";
    unsigned count = 0;

    if (!px_is(root, NULL, "pool")) {
        px_add(e, px_node_line(root), "the document is <%s>, not a libvirt <pool>; start "
               "from examples/pool.xml", root ? (const char *)root->name : "?");
        return -1;
    }
    if (px_attr(root, "type", type, sizeof type, e) < 0)
        return -1;
    if (strcmp(type, "dir") != 0) {
        px_add(e, px_node_line(root), "<pool type='%s'>: a ppf pool is a libvirt pool of "
               "type 'dir' (a directory of files); write <pool type='dir'>",
               type[0] ? type : "(none)");
        return -1;
    }
    for (n = root->children; n; n = n->next)
        if (px_is(n, PPF_POOL_NS, "pool") && count++ == 0)
            ppf = n;
        else if (px_is(n, PPF_POOL_NS, "pool"))
            px_add(e, px_node_line(n), "a second <ppf:pool> element; a pool has one");
    if (count > 1)
        return -1;
    if (!ppf) {
        px_add(e, px_node_line(root), "no ppf settings: add <ppf:pool xmlns:ppf=\"%s\" "
               "store=\"STORE\" tenant=\"TENANT\"/> inside <pool> (see ppf-pool(5)); "
               "for a plain pool use virsh pool-define", PPF_POOL_NS);
        return -1;
    }
    if (px_foreign(root, root, e) < 0)
        return -1;
    target = px_child(root, NULL, "target");
    if (!target || !(path = px_child(target, NULL, "path"))) {
        px_add(e, px_node_line(target ? target : root), "no <target><path>: a dir pool "
               "needs the directory, e.g. <target><path>/var/lib/libvirt/images/NAME"
               "</path></target>");
        return -1;
    }
    /* the values first: their messages say more than the schema's */
    memset(conf, 0, sizeof *conf);
    conf->name_line = px_node_line(px_child(root, NULL, "name"));
    conf->target_line = px_node_line(path);
    if (px_text(px_child(root, NULL, "name"), "<name>", conf->name, sizeof conf->name, e) < 0 ||
        px_text(path, "<target><path>", conf->target, sizeof conf->target, e) < 0 ||
        px_read_ppf(ppf, conf, e) < 0 || px_check(conf, e) < 0 ||
        px_validate(doc, schema, e) < 0)
        return -1;

    px_remove(ppf);
    px_drop_ns(root);
    if (!(*plain = px_dump(doc, root))) {
        px_add(e, 0, "out of memory writing the libvirt pool XML");
        return -1;
    }
    return 0;
}

int
ppf_pool_xml_split(const char *file, const char *buf, size_t len, const char *schema,
                   struct ppf_pool_conf *conf, char **plain, char *err, size_t errlen)
{
    struct px_err e;
    xmlDocPtr doc;
    int r;

    *plain = NULL;
    px_init(&e, err, errlen, file);
    if (px_parse(buf, len, &e, "pool XML", &doc) < 0)
        return -1;
    r = px_split_doc(doc, schema, conf, plain, &e);
    xmlFreeDoc(doc);
    if (r < 0) {
        free(*plain);
        *plain = NULL;
    }
    return r;
}

/* ---- building ----------------------------------------------------------- */

/* A new ppf:pool element (its own xmlns:ppf) with conf's settings. */
static xmlNodePtr
px_new_ppf(xmlDocPtr doc, const struct ppf_pool_conf *conf, int declare_ns, xmlNsPtr ns)
{
    xmlNodePtr n = xmlNewDocNode(doc, NULL, BAD_CAST "pool", NULL);

    if (!n)
        return NULL;
    if (declare_ns && !(ns = xmlNewNs(n, BAD_CAST PPF_POOL_NS, BAD_CAST PPF_POOL_NS_PREFIX))) {
        xmlFreeNode(n);
        return NULL;
    }
    xmlSetNs(n, ns);
    if (!xmlNewProp(n, BAD_CAST "store", BAD_CAST conf->store) ||
        !xmlNewProp(n, BAD_CAST "tenant", BAD_CAST conf->tenant) ||
        (conf->quota_text[0] && !xmlNewProp(n, BAD_CAST "quota", BAD_CAST conf->quota_text)) ||
        (conf->keyfile[0] && !xmlNewProp(n, BAD_CAST "keyfile", BAD_CAST conf->keyfile)) ||
        !xmlNewProp(n, BAD_CAST "volumes", BAD_CAST(conf->volumes == PPF_POOL_VOLUMES_NONE ?
                                                   "none" : "prepared"))) {
        xmlFreeNode(n);
        return NULL;
    }
    return n;
}

int
ppf_pool_xml_element(const struct ppf_pool_conf *conf, char **out)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr n;
    char *s;

    *out = NULL;
    if (!doc)
        return -1;
    if (!(n = px_new_ppf(doc, conf, 1, NULL))) {
        xmlFreeDoc(doc);
        return -1;
    }
    xmlDocSetRootElement(doc, n);
    s = px_dump(doc, n);
    xmlFreeDoc(doc);
    if (!s)
        return -1;
    s[strlen(s) - 1] = '\0';    /* one line, no newline */
    *out = s;
    return 0;
}

int
ppf_pool_xml_merge(const char *libvirt_xml, const struct ppf_pool_conf *conf, char **out,
                   char *err, size_t errlen)
{
    struct px_err e;
    xmlDocPtr doc;
    xmlNodePtr root, anchor, n, indent;

    *out = NULL;
    px_init(&e, err, errlen, "libvirt's pool XML");
    if (px_parse(libvirt_xml, strlen(libvirt_xml), &e, "pool XML", &doc) < 0)
        return -1;
    root = xmlDocGetRootElement(doc);
    if (!px_is(root, NULL, "pool")) {
        px_add(&e, 0, "not a <pool>");
        xmlFreeDoc(doc);
        return -1;
    }
    if (!(anchor = px_child(root, NULL, "uuid")))
        anchor = px_child(root, NULL, "name");
    if (!(n = px_new_ppf(doc, conf, 1, NULL)) ||
        !(indent = xmlNewDocText(doc, BAD_CAST "\n  "))) {
        xmlFreeNode(n);
        xmlFreeDoc(doc);
        px_add(&e, 0, "out of memory");
        return -1;
    }
    /* element nodes on both sides of indent: libxml2 merges no text */
    if (anchor) {
        xmlAddNextSibling(anchor, n);
        xmlAddPrevSibling(n, indent);
    } else if (root->children) {
        xmlAddPrevSibling(root->children, n);
        xmlAddNextSibling(n, indent);
    } else {
        xmlAddChild(root, n);
        xmlFreeNode(indent);
    }
    *out = px_dump(doc, root);
    xmlFreeDoc(doc);
    if (!*out) {
        px_add(&e, 0, "out of memory");
        return -1;
    }
    return 0;
}

int
ppf_pool_xml_libvirt_facts(const char *libvirt_xml, struct ppf_pool_conf *conf, char *type,
                           size_t typelen, char *err, size_t errlen)
{
    struct px_err e;
    xmlDocPtr doc;
    xmlNodePtr root, target, uuid;
    int r = -1;

    px_init(&e, err, errlen, "libvirt's pool XML");
    if (px_parse(libvirt_xml, strlen(libvirt_xml), &e, "pool XML", &doc) < 0)
        return -1;
    root = xmlDocGetRootElement(doc);
    if (!px_is(root, NULL, "pool")) {
        px_add(&e, 0, "not a <pool>");
        goto out;
    }
    if (type) {
        type[0] = '\0';
        if (px_attr(root, "type", type, typelen, &e) < 0)
            goto out;
    }
    target = px_child(root, NULL, "target");
    conf->uuid[0] = '\0';
    if ((uuid = px_child(root, NULL, "uuid")) &&
        px_text(uuid, "<uuid>", conf->uuid, sizeof conf->uuid, &e) < 0)
        goto out;
    if (px_text(px_child(root, NULL, "name"), "<name>", conf->name, sizeof conf->name,
                &e) < 0 ||
        px_text(px_child(target, NULL, "path"), "<target><path>", conf->target,
                sizeof conf->target, &e) < 0)
        goto out;
    r = 0;
out:
    xmlFreeDoc(doc);
    return r;
}

/* ---- the state file ----------------------------------------------------- */

int
ppf_pool_state_format(const struct ppf_pool_conf *conf, char **out)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root, lv, ppf, comment;
    xmlNsPtr ns;
    xmlChar *mem = NULL;
    int len = 0;
    char note[PPF_POOL_NAME_MAX + 128];

    *out = NULL;
    if (!doc)
        return -1;
    snprintf(note, sizeof note, " ppf's part of the libvirt pool %s (ppfctl pool-define); "
             "see ppf-pool(5) ", conf->name);
    if (!(comment = xmlNewDocComment(doc, BAD_CAST note)) ||
        !xmlAddChild((xmlNodePtr)doc, comment) ||
        !(root = xmlNewDocNode(doc, NULL, BAD_CAST "state", NULL)))
        goto fail;
    xmlDocSetRootElement(doc, root);
    if (!(ns = xmlNewNs(root, BAD_CAST PPF_POOL_NS, BAD_CAST PPF_POOL_NS_PREFIX)))
        goto fail;
    xmlSetNs(root, ns);
    if (!xmlNewProp(root, BAD_CAST "version", BAD_CAST "1") ||
        !(lv = xmlNewChild(root, ns, BAD_CAST "libvirt", NULL)) ||
        !xmlNewProp(lv, BAD_CAST "name", BAD_CAST conf->name) ||
        (conf->uuid[0] && !xmlNewProp(lv, BAD_CAST "uuid", BAD_CAST conf->uuid)) ||
        !xmlNewProp(lv, BAD_CAST "target", BAD_CAST conf->target) ||
        !(ppf = px_new_ppf(doc, conf, 0, ns)) || !xmlAddChild(root, ppf))
        goto fail;
    xmlDocDumpFormatMemoryEnc(doc, &mem, &len, "UTF-8", 1);
    xmlFreeDoc(doc);
    if (!mem)
        return -1;
    *out = strdup((const char *)mem);
    xmlFree(mem);
    return *out ? 0 : -1;
fail:
    xmlFreeDoc(doc);
    return -1;
}

int
ppf_pool_state_parse(const char *file, const char *buf, size_t len,
                     struct ppf_pool_conf *conf, char *err, size_t errlen)
{
    struct px_err e;
    xmlDocPtr doc;
    xmlNodePtr root, lv, ppf;
    char version[8] = "";
    int r = -1;

    memset(conf, 0, sizeof *conf);
    px_init(&e, err, errlen, file);
    if (px_parse(buf, len, &e, "ppf pool state file", &doc) < 0)
        return -1;
    root = xmlDocGetRootElement(doc);
    if (!px_is(root, PPF_POOL_NS, "state") ||
        px_attr(root, "version", version, sizeof version, &e) < 0 ||
        strcmp(version, "1") != 0 ||
        !(lv = px_child(root, PPF_POOL_NS, "libvirt")) ||
        !(ppf = px_child(root, PPF_POOL_NS, "pool"))) {
        px_add(&e, px_node_line(root), "not a ppf pool state file of version 1 (written by "
               "ppfctl pool-define); remove it and define the pool again");
        goto out;
    }
    if (px_attr(lv, "name", conf->name, sizeof conf->name, &e) <= 0 ||
        px_attr(lv, "uuid", conf->uuid, sizeof conf->uuid, &e) < 0 ||
        px_attr(lv, "target", conf->target, sizeof conf->target, &e) <= 0 ||
        px_attr(ppf, "store", conf->store, sizeof conf->store, &e) <= 0) {
        if (e.n == 0)
            px_add(&e, px_node_line(lv), "a name, target or store is missing; remove the "
                   "file and define the pool again");
        goto out;
    }
    if (px_read_ppf(ppf, conf, &e) < 0 || px_check(conf, &e) < 0)
        goto out;
    r = 0;
out:
    xmlFreeDoc(doc);
    return r;
}

/* ---- files -------------------------------------------------------------- */

int
ppf_pool_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                   size_t errlen)
{
    struct stat st;
    char *b;
    size_t n = 0;
    int fd, saved;

    *buf = NULL;
    *len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        saved = errno;
        snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
                 errno == ENOENT ? "; check the file name" : "");
        errno = saved;
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        saved = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file; name an XML file", path);
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(err, errlen, "%s: %lld bytes; a pool XML file holds at most %zu bytes",
                 path, (long long)st.st_size, max);
        close(fd);
        errno = EFBIG;
        return -1;
    }
    if (!(b = malloc(max + 1))) {
        snprintf(err, errlen, "%s: out of memory", path);
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        ssize_t k = read(fd, b + n, max + 1 - n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            saved = errno;
            snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
            free(b);
            close(fd);
            errno = saved;
            return -1;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n > max) {
            snprintf(err, errlen, "%s: more than %zu bytes; a pool XML file holds at most "
                     "that", path, max);
            free(b);
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    close(fd);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int
ppf_pool_write_file(const char *path, const char *data, size_t len, char *err,
                    size_t errlen)
{
    char tmp[PPF_POOL_PATH_MAX + 32], dir[PPF_POOL_PATH_MAX + 1];
    size_t off = 0;
    int fd, dfd;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp ||
        snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0) {
        snprintf(err, errlen, "%s: %s; check that the directory exists and is writable "
                 "(--pool-dir or PPF_POOL_DIR choose another)", tmp, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t k = write(fd, data + off, len - off);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(err, errlen, "%s: write: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (size_t)k;
    }
    if (fsync(fd) < 0) {
        snprintf(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);     /* the rename itself; best effort */
        close(dfd);
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

int
ppf_pool_state_path(const char *dir, const char *name, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s/%s.xml", dir, name);

    return k < 0 || (size_t)k >= len ? -1 : 0;
}
