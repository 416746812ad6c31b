/* The emulated card's transport (schemas/device-protocol.md §7): a memfd
 * holding the device window, handed to each client that connects to the
 * device's Unix socket, whose connection is the liveness channel; and the
 * futex interrupt line.
 */
#ifndef PPF_EMU_SERVER_H
#define PPF_EMU_SERVER_H

#include <stdint.h>

#include "peripheral/core.h"

struct emu_server;

/* Creates the window (win_size bytes, sealed against resizing) and listens
 * on path (mode 0600, or 0660 with group when that group exists; group may
 * be NULL).  Refuses to take over the socket of a running peripheral.
 * *srvp is set to NULL on entry.  Returns 0 or -1 (logged). */
int emu_server_new(const char *path, const char *group, uint64_t win_size,
                   struct emu_server **srvp);
void *emu_server_window(struct emu_server *srv);
/* Interrupt ops for ppf_core_new: wakes the host threads sleeping on the
 * pair's irq_count futex word. */
struct ppf_core_irq_ops emu_server_irq_ops(struct emu_server *srv);
/* Starts the thread that accepts clients and reclaims the pairs of clients
 * that hang up.  0 or -1. */
int emu_server_start(struct emu_server *srv, struct ppf_core *core);
/* Stops the thread, disconnects clients, removes the socket, unmaps. */
void emu_server_free(struct emu_server *srv);

#endif /* PPF_EMU_SERVER_H */
