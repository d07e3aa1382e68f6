/* Feature bits and the device configuration space (virtio 1.2, 5.2.3-5.2.4). */
#include <string.h>

#include "blk.h"

uint64_t blk_features(const struct blk_dev *d)
{
    uint64_t f = NIMBUS_BIT(VIRTIO_BLK_F_SEG_MAX) | NIMBUS_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                 NIMBUS_BIT(VIRTIO_BLK_F_FLUSH) | NIMBUS_BIT(VIRTIO_BLK_F_TOPOLOGY);
    if (d->opts.readonly)
        f |= NIMBUS_BIT(VIRTIO_BLK_F_RO);
    else
        f |= NIMBUS_BIT(VIRTIO_BLK_F_DISCARD) | NIMBUS_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    if (d->opts.num_queues > 1)
        f |= NIMBUS_BIT(VIRTIO_BLK_F_MQ);
    return f;
}

static uint32_t log2u(uint32_t v)
{
    uint32_t n = 0;
    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

/*
 * Everything in the config space is fixed at create: capacity does not
 * change (no resize support) and nothing is driver-writable, since
 * CONFIG_WCE is not offered.
 */
void blk_config_build(struct blk_dev *d)
{
    uint8_t *c = d->config;
    const struct blk_file *f = &d->file;
    /* The logical block the guest should use: O_DIRECT's granule when that
     * is coarser than a sector, so a well-behaved guest never needs the
     * page-cache detour. */
    uint32_t lbs = BLK_SECTOR;
    if (d->opts.direct && f->off_align > BLK_SECTOR && f->off_align <= 4096)
        lbs = f->off_align;
    uint32_t pbs = f->phys_block >= lbs ? f->phys_block : lbs;

    memset(c, 0, BLK_CONFIG_SIZE);
    nimbus_le_store(c + BLK_CFG_CAPACITY, 8, f->sectors);
    nimbus_le_store(c + BLK_CFG_SEG_MAX, 4, d->seg_max);
    nimbus_le_store(c + BLK_CFG_BLK_SIZE, 4, lbs);
    c[BLK_CFG_PHYS_EXP] = (uint8_t)log2u(pbs / lbs);
    nimbus_le_store(c + BLK_CFG_MIN_IO, 2, pbs / lbs);
    /* qcow2: a cluster is the unit of allocation, so of cheap writes and
     * of discards that actually free space. */
    uint32_t cl = d->qcow2 && d->cluster_size >= pbs ? d->cluster_size / lbs : 0;
    nimbus_le_store(c + BLK_CFG_OPT_IO, 4, cl);
    nimbus_le_store(c + BLK_CFG_NUM_QUEUES, 2, d->opts.num_queues);
    if (!d->opts.readonly) {
        nimbus_le_store(c + BLK_CFG_MAX_DISCARD_SECTORS, 4, BLK_DWZ_MAX_SECTORS);
        nimbus_le_store(c + BLK_CFG_MAX_DISCARD_SEG, 4, BLK_DWZ_SEGS);
        nimbus_le_store(c + BLK_CFG_DISCARD_ALIGN, 4,
                        cl ? d->cluster_size / BLK_SECTOR : pbs / BLK_SECTOR);
        nimbus_le_store(c + BLK_CFG_MAX_WZ_SECTORS, 4, BLK_DWZ_MAX_SECTORS);
        nimbus_le_store(c + BLK_CFG_MAX_WZ_SEG, 4, BLK_DWZ_SEGS);
        c[BLK_CFG_WZ_MAY_UNMAP] = 1;
    }
}
