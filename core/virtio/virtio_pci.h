/*
 * The virtio 1.x modern PCI transport (virtio 1.2, 4.1): puts a virtio
 * plugin behind a PCI function with the common/notify/ISR/device-config
 * capabilities and MSI-X in one 64-bit BAR, negotiates features, runs the
 * device status machine and owns the virtqueues the plugin reaches through
 * the vq_* host services.  Queue kicks arrive through KVM ioeventfds (no
 * userspace exit) and are handed to the plugin on the event loop thread.
 */
#ifndef NIMBUS_VIRTIO_PCI_H
#define NIMBUS_VIRTIO_PCI_H

#include <stddef.h>
#include <stdint.h>

#include "nimbus/plugin_abi.h"

struct device;
struct virtio_pci;

/* BAR 0 layout: one page per structure, notify stride 4 bytes per queue. */
#define VPCI_BAR_SIZE 0x8000u
#define VPCI_COMMON_OFF 0x0000u
#define VPCI_ISR_OFF 0x1000u
#define VPCI_DEVCFG_OFF 0x2000u
#define VPCI_NOTIFY_OFF 0x3000u
#define VPCI_NOTIFY_MULT 4u
#define VPCI_MSIX_TABLE_OFF 0x4000u
#define VPCI_MSIX_PBA_OFF 0x6000u
#define VPCI_REGION_SIZE 0x1000u

/* device_status bits (virtio 1.2, 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_NEEDS_RESET 0x40u
#define VIRTIO_STATUS_FAILED 0x80u

/*
 * Validate `info` and attach device d to the PCI host in d->env.  Called by
 * device_create with d->lock not held.  NULL with a message on failure.
 */
struct virtio_pci *virtio_pci_create(struct device *d, const nimbus_virtio_info *info,
                                     char *err, size_t errlen);
/* Stop kicks and free the transport (after the plugin was destroyed). */
void virtio_pci_destroy(struct virtio_pci *v);
/*
 * Machine reset: the virtio device reset, synchronous (the plugin's reset()
 * waits for its I/O, also I/O of a reset the driver started and that is
 * still pending).  Call it from a VMM thread, never a vCPU.
 *
 * The driver's reset (status 0, on a vCPU) never waits: a plugin with
 * virtio_reset_begin (ABI minor 5) may leave it pending and end it with
 * virtio_pci_reset_done; a group thread busy inside the plugin defers it
 * to a later access.  Meanwhile device_status reads non-zero, the queues
 * are inert (no kick reaches the plugin, vq_pop yields nothing, vq_push and
 * vq_notify are refused) and other writes are ignored.
 */
void virtio_pci_reset(struct virtio_pci *v);
/* The plugin's pending reset ended (host service virtio_reset_done). */
void virtio_pci_reset_done(struct virtio_pci *v);

/* Host services behind nimbus_host_api (caller holds d->lock: inside an op). */
int virtio_pci_vq_pop(struct virtio_pci *v, uint32_t queue, nimbus_vq_buf *bufs, uint32_t cap,
                      uint32_t *nbufs, uint32_t *head);
int virtio_pci_vq_push(struct virtio_pci *v, uint32_t queue, uint32_t head, uint32_t written);
int virtio_pci_vq_notify(struct virtio_pci *v, uint32_t queue);
uint32_t virtio_pci_vq_size(struct virtio_pci *v, uint32_t queue);
int virtio_pci_config_changed(struct virtio_pci *v);
void virtio_pci_needs_reset(struct virtio_pci *v, const char *why);

/* PCI slot of the device (for logs and tests). */
uint32_t virtio_pci_slot(const struct virtio_pci *v);

#endif
