/* The metrics ring of the device window (schemas/device-protocol.md §6):
 * its device-side initialisation, the host's single producer and the
 * device's checking consumer.  Pure logic on a memory region, no I/O, so
 * the unit tests run it on a plain buffer.  Neither side trusts the other:
 * the producer checks the header before it writes anything, the consumer
 * keeps its own geometry and tail and checks every record it copies out.
 */
#ifndef PPF_COMMON_METRICS_H
#define PPF_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ppf/protocol.h"

/* Bytes a ring of nrecs records takes (header included). */
uint64_t ppf_metrics_ring_size(uint32_t nrecs);
/* Records of the largest ring that fits in size bytes; 0 if none does. */
uint32_t ppf_metrics_ring_fit(uint64_t size);

/* Device: writes the header of a ring of nrecs records into mem (size
 * bytes, zeroed by the caller).  Returns 0, or -1 if it does not fit or
 * nrecs is not a power of two in range. */
int ppf_metrics_ring_init(void *mem, uint64_t size, uint32_t nrecs);

/* Host: the single producer. */
struct ppf_metrics_writer {
    struct ppf_metrics_hdr *hdr;
    uint8_t *recs;
    uint32_t nrecs;             /* checked copy of the header's */
    uint32_t pid;               /* ours, in hdr->producer while attached */
    uint64_t head;              /* our copy: the device never writes it */
};

/* Checks the ring at mem (size bytes of untrusted window) and claims it
 * for pid.  Returns 0; -1 if the header is invalid (why says how); -2 if
 * another producer holds it (*holder = its pid: the caller decides whether
 * it is dead and then calls ppf_metrics_writer_steal). */
int ppf_metrics_writer_attach(struct ppf_metrics_writer *w, void *mem, uint64_t size,
                              uint32_t pid, uint32_t *holder, char *why, size_t whylen);
/* Takes the ring over from a dead producer (CAS holder -> pid); 0 or -1. */
int ppf_metrics_writer_steal(struct ppf_metrics_writer *w, uint32_t holder);
/* Publishes one record (seq and index are set here).  Returns 0, or -1 if
 * the ring was taken from us (the writer is then detached). */
int ppf_metrics_writer_put(struct ppf_metrics_writer *w, const struct ppf_metrics_rec *r);
/* Gives the ring up (producer back to 0 if still ours).  Fine if detached. */
void ppf_metrics_writer_detach(struct ppf_metrics_writer *w);

/* Device: the consumer. */
struct ppf_metrics_reader {
    const uint8_t *mem;         /* the ring in the window */
    uint32_t nrecs;             /* the device's own copy, never re-read */
    uint64_t tail;              /* sequence of the next record to read */
    uint64_t records;           /* valid records returned */
    uint64_t dropped;           /* overwritten before we read them */
    uint64_t invalid;           /* torn after retries, or failing the checks */
    uint64_t resyncs;           /* head moved backwards (a new ring or a liar) */
};

void ppf_metrics_reader_init(struct ppf_metrics_reader *r, const void *mem, uint32_t nrecs);
/* Copies the next valid record to *out, skipping (and counting) dropped,
 * torn and invalid ones.  Returns 1, or 0 when caught up with head.  Each
 * call looks at most nrecs + 1 records whatever the host wrote. */
int ppf_metrics_reader_next(struct ppf_metrics_reader *r, struct ppf_metrics_rec *out);
/* 0 if the record's values are in range, else -1 (reader uses it). */
int ppf_metrics_rec_check(const struct ppf_metrics_rec *rec);

#endif /* PPF_COMMON_METRICS_H */
