/* ppfd's libvirt plugin (plugin/libvirt.c) against libvirt's test driver
 * (test:///default, one shared in-process state): the lifecycle of a ppf
 * domain is reported as DEFINED, STARTED, STOPPED and UNDEFINED with its
 * image and tenant; a plain domain is never reported; a ppf domain defined
 * before the plugin connects is reported DEFINED by the first walk; the
 * event queue keeps the newest events and counts what it drops.  Fast: no
 * libvirtd, no QEMU.
 */
#include <config.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>

#include "common/log.h"
#include "plugin/events.h"
#include "plugin/libvirt.h"
#include "ppf/protocol.h"

#define MAX_SEEN 64

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ppf_host_event seen[MAX_SEEN];
static int nseen;

static void
record(const struct ppf_host_event *ev, void *opaque)
{
    (void)opaque;
    pthread_mutex_lock(&seen_lock);
    if (nseen < MAX_SEEN)
        seen[nseen++] = *ev;
    pthread_mutex_unlock(&seen_lock);
}

/* Waits up to 5 s for an event of kind for domain name; 1 if seen. */
static int
wait_for(uint32_t kind, const char *name, struct ppf_host_event *out)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&seen_lock);
        for (int k = 0; k < nseen; k++)
            if (seen[k].kind == kind && strcmp(seen[k].domain, name) == 0) {
                if (out)
                    *out = seen[k];
                pthread_mutex_unlock(&seen_lock);
                return 1;
            }
        pthread_mutex_unlock(&seen_lock);
        nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
    }
    return 0;
}

static int
count_for(const char *name)
{
    int n = 0;

    pthread_mutex_lock(&seen_lock);
    for (int k = 0; k < nseen; k++)
        n += strcmp(seen[k].domain, name) == 0;
    pthread_mutex_unlock(&seen_lock);
    return n;
}

static char *
domain_xml(const char *name, const char *meta)
{
    static char buf[4096];

    snprintf(buf, sizeof buf,
             "<domain type='test'><name>%s</name>"
             "<metadata>%s</metadata>"
             "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
             "<os><type arch='x86_64'>hvm</type></os>"
             "<devices><disk type='file' device='disk'>"
             "<source file='/var/lib/ppf/test/%s.qcow2'/><target dev='vda'/></disk>"
             "</devices></domain>", name, meta, name);
    return buf;
}

#define PPF_META(img, tenant) \
    "<ppf:deploy xmlns:ppf='urn:ppf:libvirt:1.0' image='" img "' tenant='" tenant "'/>"

static void
test_lifecycle(void **state)
{
    virConnectPtr conn;
    virDomainPtr dom, plain, early;
    struct ppf_lv *lv;
    struct ppf_host_event ev;

    (void)state;
    conn = virConnectOpen("test:///default");
    assert_non_null(conn);
    /* defined before the plugin connects: found by its first walk */
    early = virDomainDefineXML(conn, domain_xml("early", PPF_META("img-early", "acme")));
    assert_non_null(early);

    lv = ppf_lv_start("test:///default", record, NULL);
    assert_non_null(lv);
    assert_true(wait_for(PPF_EVENT_DEFINED, "early", &ev));
    assert_string_equal(ev.image, "img-early");
    assert_string_equal(ev.tenant, "acme");
    assert_int_equal(strlen(ev.uuid), 36);
    assert_true(ppf_lv_connected(lv));

    dom = virDomainDefineXML(conn, domain_xml("web", PPF_META("img-web", "bob")));
    assert_non_null(dom);
    plain = virDomainDefineXML(conn, domain_xml("plain", ""));
    assert_non_null(plain);
    assert_true(wait_for(PPF_EVENT_DEFINED, "web", &ev));
    assert_string_equal(ev.image, "img-web");
    assert_string_equal(ev.tenant, "bob");
    assert_true(ev.time_us > 0);

    assert_int_equal(virDomainCreate(dom), 0);
    assert_true(wait_for(PPF_EVENT_STARTED, "web", NULL));
    assert_int_equal(virDomainDestroy(dom), 0);
    assert_true(wait_for(PPF_EVENT_STOPPED, "web", NULL));
    /* undefined: the XML is gone, the image and tenant are remembered */
    assert_int_equal(virDomainUndefine(dom), 0);
    assert_true(wait_for(PPF_EVENT_UNDEFINED, "web", &ev));
    assert_string_equal(ev.image, "img-web");
    assert_string_equal(ev.tenant, "bob");

    /* the plain domain's whole life: nothing reported */
    assert_int_equal(virDomainCreate(plain), 0);
    assert_int_equal(virDomainDestroy(plain), 0);
    assert_int_equal(virDomainUndefine(plain), 0);
    assert_int_equal(virDomainUndefine(early), 0);
    assert_true(wait_for(PPF_EVENT_UNDEFINED, "early", NULL));
    assert_int_equal(count_for("plain"), 0);

    ppf_lv_stop(lv);
    virDomainFree(dom);
    virDomainFree(plain);
    virDomainFree(early);
    virConnectClose(conn);
}

static void
test_queue_drops_oldest(void **state)
{
    struct ppf_evq *q = ppf_evq_new(4);
    struct ppf_evq_stats st;
    struct ppf_host_event ev;

    (void)state;
    assert_non_null(q);
    for (int i = 0; i < 10; i++) {
        memset(&ev, 0, sizeof ev);
        ev.kind = PPF_EVENT_STARTED;
        snprintf(ev.image, sizeof ev.image, "img-%d", i);
        ppf_evq_push(q, &ev);
    }
    ppf_evq_get_stats(q, &st);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.dropped, 6);
    ppf_evq_free(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_queue_drops_oldest),
    };

    ppf_log_init("test-lv", PPF_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
