/*
 * Limits and defaults of the VM configuration, shared by the command line
 * and the REST API so both accept exactly the same values.
 */
#ifndef NIMBUS_CONFIG_LIMITS_H
#define NIMBUS_CONFIG_LIMITS_H

#define CLI_MAX_VCPUS 1024u
#define CLI_MIN_MEMORY (32ull << 20)
#define CLI_MIN_PHYS_BITS 32u
#define CLI_MAX_PHYS_BITS 52u
#define CLI_MAX_VERBOSITY 16
/* virtio: split virtqueue sizes are powers of two up to 32768. */
#define CLI_MAX_QUEUE_SIZE 32768u
#define CLI_MAX_DISK_QUEUES 64u
/* num_queues the user left out: one per boot vCPU (QEMU's default), filled
 * in once --cpus is known.  blk-mq then completes each request on the CPU
 * that submitted it; with one queue, every completion interrupt lands on
 * one CPU and wakes submitters on the others by IPI (measured in the nested
 * host: 1 MiB reads 30-60 % slower from the other vCPU). */
#define CLI_DISK_QUEUES_PER_VCPU 0u
/* ...but no more than the virtio_blk plugin serves (BLK_MAX_QUEUES). */
#define CLI_MAX_DEFAULT_DISK_QUEUES 16u
/* QEMU's default too: seg_max is queue_size - 2 (a chain may not be longer
 * than the ring), and 254 segments let a 1 MiB request from scattered 4 KiB
 * pages go as one chain; at 128 the guest splits it in three. */
#define CLI_DEFAULT_DISK_QUEUE_SIZE 256u
/* virtio-blk VIRTIO_BLK_T_GET_ID returns at most 20 bytes. */
#define CLI_MAX_DISK_SERIAL 20u
#define CLI_DEFAULT_RNG "/dev/urandom"
/* --net: RFC 791's minimum; the 16-bit IP total length. */
#define CLI_NET_MIN_MTU 68u
#define CLI_NET_MAX_MTU 65535u
#define CLI_NET_MIN_QUEUE_SIZE 64u
#define CLI_NET_MAX_QUEUE_SIZE 1024u
#define CLI_NET_DEFAULT_QUEUE_SIZE 256u
/* Cloud Hypervisor's mask when only ip= is given. */
#define CLI_NET_DEFAULT_MASK "255.255.255.0"
#define CLI_NET_IFNAME_MAX 15u /* IFNAMSIZ - 1 */

/* The Cloud Hypervisor release whose CLI and API nimbus answers like. */
#define CLI_CH_API_VERSION "51.1.0"

#endif
