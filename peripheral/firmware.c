/* Dispatch of the firmware commands (see firmware.h): checks every
 * attribute the host sent (it is never trusted) before the subsystems see
 * it, and turns their answers into payloads.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "peripheral/federation.h"
#include "peripheral/firmware.h"
#include "peripheral/oplog.h"

int
ppf_fw_new(const char *state_dir, struct ppf_fw **out)
{
    struct ppf_fw *fw = calloc(1, sizeof *fw);

    *out = NULL;
    if (!fw || !(fw->state_dir = strdup(state_dir)) ||
        ppf_fw_config_open(state_dir, &fw->config) < 0) {
        ppf_err("firmware", "out of memory loading the state in %s", state_dir);
        if (fw)
            free(fw->state_dir);
        free(fw);
        return -1;
    }
    /* without the engine the device still serves every command but
     * EVENT and TABLE_DUMP; nothing is predicted */
    ppf_predict_new(ppf_fw_config_policy(fw->config), state_dir, &fw->predict);
    /* without it the device serves on: LOG_READ and USAGE answer empty */
    if (!(fw->oplog = ppf_oplog_new(PPF_OPLOG_DEFAULT_RECORDS)))
        ppf_warn("firmware", "out of memory for the operations log; ppfctl events and the "
                 "usage in ppfctl stats stay empty");
    ppf_predict_set_oplog(fw->predict, fw->oplog);
    *out = fw;
    return 0;
}

static void
fw_kick(void *ctx)
{
    ppf_core_kick(ctx);
}

int
ppf_fw_attach(struct ppf_fw *fw, struct ppf_core *core)
{
    fw->core = core;
    if (ppf_buffer_open(ppf_fw_config_policy(fw->config),
                        ppf_fw_config_generation(fw->config) ? NULL : fw->state_dir,
                        fw_kick, core, &fw->buffer) < 0) {
        ppf_err("firmware", "the prefetch buffer is not available; fix buffer.path in the "
                "policy and apply it again");
        return -1;
    }
    ppf_buffer_set_oplog(fw->buffer, fw->oplog);
    if (fw->predict)
        ppf_predict_attach(fw->predict, fw->buffer, fw->monitor);
    return 0;
}

void
ppf_fw_free(struct ppf_fw *fw)
{
    if (!fw)
        return;
    ppf_buffer_free(fw->buffer);
    ppf_predict_free(fw->predict);
    ppf_oplog_free(fw->oplog);  /* after the buffer and predictor that report to it */
    ppf_fw_config_free(fw->config);
    free(fw->state_dir);
    free(fw);
}

/* The attributes of a buffer command, checked. */
struct fw_args {
    char image[256], tenant[256], domain[64], target[4096];
    int has_image, has_target, has_domain;
    int priority, mode, ephemeral, placeholder;
    uint64_t until_us;          /* PIN: 0 = never expires */
};

/* 0, or -1 with msg saying which attribute is wrong. */
static int
fw_parse(const uint8_t *in, uint32_t len, struct fw_args *a, char *msg, size_t msglen)
{
    struct ppf_attr_reader r;
    struct ppf_attr at;
    uint32_t v;
    int k;

    memset(a, 0, sizeof *a);
    strcpy(a->tenant, "default");
    a->priority = a->mode = a->ephemeral = -1;
    a->placeholder = 0;
    ppf_attr_reader_init(&r, in, len);
    while ((k = ppf_attr_next(&r, &at)) > 0) {
        switch (at.type) {
        case PPF_A_IMAGE:
            if (ppf_attr_get_str(&at, a->image, sizeof a->image) < 0 ||
                !ppf_name_ok(a->image)) {
                snprintf(msg, msglen, "the image name is not valid: an image is named by "
                         "1-255 letters, digits, '.', '_' or '-' (never a path)");
                return -1;
            }
            a->has_image = 1;
            break;
        case PPF_A_TENANT:
            if (ppf_attr_get_str(&at, a->tenant, sizeof a->tenant) < 0 ||
                !ppf_name_ok(a->tenant)) {
                snprintf(msg, msglen, "the tenant name is not valid (1-255 letters, digits, "
                         "'.', '_' or '-')");
                return -1;
            }
            break;
        case PPF_A_DOMAIN:
            if (ppf_attr_get_str(&at, a->domain, sizeof a->domain) < 0 || !ppf_uuid_ok(a->domain)) {
                snprintf(msg, msglen, "the domain is not a UUID");
                return -1;
            }
            a->has_domain = 1;
            break;
        case PPF_A_TARGET:
            if (ppf_attr_get_str(&at, a->target, sizeof a->target) < 0 || a->target[0] != '/') {
                snprintf(msg, msglen, "the target is not an absolute path");
                return -1;
            }
            a->has_target = 1;
            break;
        case PPF_A_UNTIL_US:
            if (ppf_attr_get_u64(&at, &a->until_us) < 0) {
                snprintf(msg, msglen, "the pin's end time is not a u64");
                return -1;
            }
            break;
        case PPF_A_PLACEHOLDER:
            if (ppf_attr_get_u32(&at, &v) < 0 || v > 1) {
                snprintf(msg, msglen, "attribute %u is out of range", at.type);
                return -1;
            }
            a->placeholder = (int)v;
            break;
        case PPF_A_PRIORITY:
        case PPF_A_MODE:
        case PPF_A_EPHEMERAL:
            if (ppf_attr_get_u32(&at, &v) < 0 || v > (at.type == PPF_A_PRIORITY ? 2u : 1u)) {
                snprintf(msg, msglen, "attribute %u is out of range", at.type);
                return -1;
            }
            if (at.type == PPF_A_PRIORITY)
                a->priority = (int)v;
            else if (at.type == PPF_A_MODE)
                a->mode = (int)v;
            else
                a->ephemeral = (int)v;
            break;
        default:
            break;              /* unknown: skipped (§5.1) */
        }
    }
    if (k < 0) {
        snprintf(msg, msglen, "malformed attributes");
        return -1;
    }
    return 0;
}

static uint32_t
fw_reply(uint8_t *out, uint32_t cap, const char *msg)
{
    size_t n = strlen(msg);

    if (n > cap)
        n = cap;
    memcpy(out, msg, n);
    return (uint32_t)n;
}

static enum ppf_status_code
fw_buffer_cmd(struct ppf_fw *fw, uint32_t qid, const struct ppf_sqe *e, const uint8_t *in,
              uint8_t *out, uint32_t *result, uint32_t *out_len)
{
    struct fw_args a;
    struct ppf_buf_req req;
    struct ppf_attr_writer w;
    enum ppf_status_code sc;
    char msg[512] = "";

    if (!fw->buffer) {
        *out_len = fw_reply(out, e->out_cap, "the prefetch buffer is not available (see the "
                            "peripheral's log); fix buffer.path in the policy");
        return PPF_SC_INTERNAL;
    }
    if (fw_parse(in, e->in_len, &a, msg, sizeof msg) < 0) {
        *out_len = fw_reply(out, e->out_cap, msg);
        return PPF_SC_INVALID_PAYLOAD;
    }
    memset(&req, 0, sizeof req);
    req.image = a.image;
    req.tenant = a.tenant;
    req.priority = a.priority;
    req.domain = a.has_domain ? a.domain : NULL;
    req.target = a.target;
    req.mode = a.mode;
    req.ephemeral = a.ephemeral;
    req.placeholder = a.placeholder;
    req.q = qid;
    req.gen = ppf_core_qp_gen(fw->core, qid);
    req.cid = e->cid;
    ppf_attr_writer_init(&w, out, e->out_cap);
    switch (e->opcode) {
    case PPF_OP_PREFETCH:
    case PPF_OP_DEPLOY:
        if (!a.has_image || (e->opcode == PPF_OP_DEPLOY && !a.has_target)) {
            snprintf(msg, sizeof msg, "%s needs an image%s", ppf_opcode_name(e->opcode),
                     e->opcode == PPF_OP_DEPLOY ? " and a target" : "");
            sc = PPF_SC_INVALID_PAYLOAD;
            break;
        }
        sc = e->opcode == PPF_OP_PREFETCH ?
             ppf_buffer_prefetch(fw->buffer, &req, &w, result, msg, sizeof msg) :
             ppf_buffer_deploy(fw->buffer, &req, &w, result, msg, sizeof msg);
        if (e->opcode == PPF_OP_DEPLOY && fw->predict &&
            (sc == PPF_SC_SUCCESS || (unsigned)sc == PPF_CORE_PENDING))
            ppf_predict_deploy(fw->predict, a.image, a.tenant, a.has_domain ? a.domain : NULL);
        break;
    case PPF_OP_RELEASE:
        if (!a.has_domain) {
            snprintf(msg, sizeof msg, "RELEASE needs a domain UUID");
            sc = PPF_SC_INVALID_PAYLOAD;
            break;
        }
        sc = ppf_buffer_release(fw->buffer, a.domain, result, msg, sizeof msg);
        break;
    case PPF_OP_EVICT:
        if (!a.has_image) {
            snprintf(msg, sizeof msg, "EVICT needs an image");
            sc = PPF_SC_INVALID_PAYLOAD;
            break;
        }
        sc = ppf_buffer_evict(fw->buffer, a.image, strcmp(a.tenant, "default") ? a.tenant : NULL,
                              result, msg, sizeof msg);
        break;
    case PPF_OP_EXPLAIN:
        if (!a.has_image) {
            snprintf(msg, sizeof msg, "EXPLAIN needs an image");
            sc = PPF_SC_INVALID_PAYLOAD;
            break;
        }
        ppf_buffer_explain(fw->buffer, a.image, a.tenant, &w);
        if (fw->predict)
            ppf_predict_explain(fw->predict, a.image, a.tenant, &w);
        ppf_oplog_explain(fw->oplog, a.image, &w);
        sc = PPF_SC_SUCCESS;
        break;
    case PPF_OP_PIN:
        if (!a.has_image) {
            snprintf(msg, sizeof msg, "PIN needs an image");
            sc = PPF_SC_INVALID_PAYLOAD;
            break;
        }
        sc = ppf_buffer_pin_cmd(fw->buffer, a.image, a.tenant, e->arg[0] != 0,
                                a.until_us / 1000000, &w, result, msg, sizeof msg);
        break;
    default:                    /* BUFFER_LIST */
        sc = ppf_buffer_list(fw->buffer, e->arg[0], &w, result);
        break;
    }
    if ((unsigned)sc == PPF_CORE_PENDING)
        return sc;
    if (sc != PPF_SC_SUCCESS) {
        *out_len = fw_reply(out, e->out_cap, msg);
        return sc;
    }
    if (w.overflow) {
        *out_len = 0;
        return PPF_SC_DATA_TOO_LONG;
    }
    *out_len = (uint32_t)w.len;
    return PPF_SC_SUCCESS;
}

/* An accepted EVENT DEPLOY (checked by ppf_predict_event) is a deploy the
 * host made without the device: recorded as a FALLBACK (§5.9). */
static void
fw_event_oplog(struct ppf_fw *fw, const uint8_t *in, uint32_t len)
{
    struct ppf_attr_reader r;
    struct ppf_attr at;
    char image[PPF_NAME_MAX + 1] = "", tenant[PPF_NAME_MAX + 1] = "default";
    uint32_t kind = 0;

    ppf_attr_reader_init(&r, in, len);
    while (ppf_attr_next(&r, &at) > 0) {
        if (at.type == PPF_A_EVENT && ppf_attr_get_u32(&at, &kind) < 0)
            return;
        if ((at.type == PPF_A_IMAGE && ppf_attr_get_str(&at, image, sizeof image) < 0) ||
            (at.type == PPF_A_TENANT && ppf_attr_get_str(&at, tenant, sizeof tenant) < 0))
            return;
    }
    if (kind == PPF_EVENT_DEPLOY && image[0])
        ppf_oplog_deploy(fw->oplog, image, tenant, PPF_OUTCOME_FALLBACK, 0, 0);
}

static enum ppf_status_code
fw_predict_cmd(struct ppf_fw *fw, const struct ppf_sqe *e, const uint8_t *in, uint8_t *out,
               uint32_t *result, uint32_t *out_len)
{
    struct ppf_attr_writer w;
    enum ppf_status_code sc;
    char msg[512] = "";

    if (!fw->predict) {
        *out_len = fw_reply(out, e->out_cap, "the learning engine is not running (see the "
                            "peripheral's log)");
        return PPF_SC_INTERNAL;
    }
    if (e->opcode == PPF_OP_EVENT) {
        sc = ppf_predict_event(fw->predict, in, e->in_len, result, msg, sizeof msg);
        if (sc != PPF_SC_SUCCESS)
            *out_len = fw_reply(out, e->out_cap, msg);
        else
            fw_event_oplog(fw, in, e->in_len);
        return sc;
    }
    ppf_attr_writer_init(&w, out, e->out_cap);
    sc = ppf_predict_table_dump(fw->predict, e->arg[0], &w, result);
    *out_len = sc == PPF_SC_SUCCESS ? (uint32_t)w.len : 0;
    return sc;
}

static enum ppf_status_code
fw_exec(void *opaque, uint32_t qid, const struct ppf_sqe *e, const uint8_t *in,
        uint8_t *out, uint32_t *result, uint32_t *out_len)
{
    struct ppf_fw *fw = opaque;
    enum ppf_status_code sc;

    *result = 0;
    *out_len = 0;
    switch (e->opcode) {
    case PPF_OP_CONFIGURE:
        sc = ppf_fw_config_configure(fw->config, e, in, out, result, out_len);
        if (sc == PPF_SC_SUCCESS && e->arg[0] == PPF_CONFIGURE_SET && fw->core) {
            if (fw->predict)
                ppf_predict_reconfigure(fw->predict, ppf_fw_config_policy(fw->config));
            if (fw->buffer)
                ppf_buffer_reconfigure(fw->buffer, ppf_fw_config_policy(fw->config));
            else if (ppf_buffer_open(ppf_fw_config_policy(fw->config), NULL, fw_kick, fw->core,
                                     &fw->buffer) == 0) {
                ppf_buffer_set_oplog(fw->buffer, fw->oplog);
                if (fw->predict)
                    ppf_predict_attach(fw->predict, fw->buffer, fw->monitor);
            }
        }
        return sc;
    case PPF_OP_EVENT:
    case PPF_OP_TABLE_DUMP:
        return fw_predict_cmd(fw, e, in, out, result, out_len);
    case PPF_OP_LOG_READ:       /* §5.9: arg[0] = first sequence number */
    case PPF_OP_USAGE: {        /* §5.9: arg[0] = first group */
        struct ppf_attr_writer w;

        ppf_attr_writer_init(&w, out, e->out_cap);
        sc = e->opcode == PPF_OP_LOG_READ ? ppf_oplog_read(fw->oplog, e->arg[0], &w, result) :
             ppf_oplog_usage(fw->oplog, e->arg[0], &w, result);
        *out_len = sc == PPF_SC_SUCCESS ? (uint32_t)w.len : 0;
        return sc;
    }
    case PPF_OP_FED_STATUS: {   /* §5.8 */
        struct ppf_attr_writer w;

        ppf_attr_writer_init(&w, out, e->out_cap);
        ppf_fed_status(ppf_predict_federation(fw->predict), &w);
        if (w.overflow)
            return PPF_SC_DATA_TOO_LONG;
        *out_len = (uint32_t)w.len;
        return PPF_SC_SUCCESS;
    }
    case PPF_OP_PREFETCH:
    case PPF_OP_DEPLOY:
    case PPF_OP_RELEASE:
    case PPF_OP_EVICT:
    case PPF_OP_PIN:
    case PPF_OP_EXPLAIN:
    case PPF_OP_BUFFER_LIST:
        return fw_buffer_cmd(fw, qid, e, in, out, result, out_len);
    default:
        /* reserved (§5.4): not implemented in this version */
        return PPF_SC_INVALID_OPCODE;
    }
}

static unsigned
fw_poll(void *opaque)
{
    struct ppf_fw *fw = opaque;
    unsigned n = fw->buffer ? ppf_buffer_poll(fw->buffer, fw->core) : 0;

    /* predictions are not commands: they do not keep the core spinning */
    if (fw->predict)
        ppf_predict_tick(fw->predict);
    return n;
}

static void
fw_stats(void *opaque, struct ppf_attr_writer *w)
{
    struct ppf_fw *fw = opaque;

    if (fw->buffer)
        ppf_buffer_stats(fw->buffer, w);
    if (fw->predict)
        ppf_predict_stats(fw->predict, w);
}

struct ppf_core_cmd_ops
ppf_fw_cmd_ops(struct ppf_fw *fw)
{
    struct ppf_core_cmd_ops ops = { .exec = fw_exec, .poll = fw_poll, .stats = fw_stats,
                                    .opaque = fw };

    return ops;
}
