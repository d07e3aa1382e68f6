/*
 * --event-monitor: Cloud Hypervisor's JSON event stream.  Each event is
 *   {"timestamp":{"secs":S,"nanos":N},"source":"vm","event":"booted","properties":null}
 * followed by a blank line (CH's own tests split on it; libvirt counts
 * braces).  The timestamp is the time since the VMM started, as in CH.
 * libvirt marks a domain off on vmm:shutdown / vm:shutdown and re-reads
 * vm.info on vm:rebooted, so every state change must be reported.
 */
#ifndef NIMBUS_EVENT_MONITOR_H
#define NIMBUS_EVENT_MONITOR_H

#include <stddef.h>

/*
 * Open the stream: path (a file, created or truncated, or a FIFO whose
 * reader may not be there yet: opening then waits for it, as CH does) or
 * an inherited fd (>= 0).  Returns 0 or -1 with err set.
 */
int event_monitor_open(const char *path, int fd, char *err, size_t errlen);
/*
 * One event.  properties is a JSON object text or NULL.  Any thread; never
 * blocks: a reader that stopped reading loses events (counted in the log),
 * never the VM's progress.  A no-op without a monitor.
 */
void event_emit(const char *source, const char *event, const char *properties);
void event_monitor_close(void);

#endif
