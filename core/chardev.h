/*
 * Character backends for serial/console devices (--serial / --console).
 * Output is buffered and written by the event loop, so a device op on a
 * vCPU thread never blocks on a slow terminal; input is delivered to the
 * device on the loop thread at the pace the device accepts it.
 */
#ifndef NIMBUS_CHARDEV_H
#define NIMBUS_CHARDEV_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "eventloop.h"

struct chardev;

/* Receives input on the loop thread; returns the bytes accepted. */
typedef uint64_t (*chr_sink_fn)(void *opaque, const void *buf, uint64_t len);

/*
 * mode must not be CHR_OFF.  `what` names the device for the user ("serial
 * port", "console"): a pty backend prints "nimbus: <what> is on /dev/pts/N"
 * to stderr.  chr_open is chr_open_named with a generic name.
 */
struct chardev *chr_open_named(const struct chr_config *cfg, const char *what,
                               struct event_loop *el, char *err, size_t errlen);
struct chardev *chr_open(const struct chr_config *cfg, struct event_loop *el, char *err,
                         size_t errlen);
/* The slave's path (/dev/pts/N) of a pty backend, else NULL. */
const char *chr_pty_name(const struct chardev *c);
/*
 * A duplicate of the backend's fd for the VMM to keep across a reboot
 * (chr_config.fd): pty master or output file; -1 for other backends.
 */
int chr_keep_fd(const struct chardev *c);
/* Start delivering input to sink (call once the device exists). */
int chr_attach(struct chardev *c, chr_sink_fn sink, void *opaque);
/*
 * Queue output; never blocks.  Returns bytes accepted (short when full).
 * A pty with no client open accepts everything and keeps the newest 1 MiB.
 */
int64_t chr_write(struct chardev *c, const void *buf, uint64_t len);
/* The device has room again: retry pending input on the loop thread. */
void chr_input_ready(struct chardev *c);
/* Stop input; must be called before the event loop stops. */
void chr_detach(struct chardev *c);
/* Write out what is buffered (blocking; a pty only what it takes without
 * blocking), fdatasync files, restore the tty, free. */
void chr_close(struct chardev *c);

#endif
