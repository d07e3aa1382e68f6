/* The probe's virtio-blk requests: header, one data buffer, status; polled. */
#include "probe.h"

int blk_request(struct vdev *d, u32 type, u64 sector, u32 buf, u32 len)
{
    struct vq *q = &d->q[0];
    u32 hdr = q->bufs, status = q->bufs + 0x10;
    w32(hdr, type);
    w32(hdr + 4, 0);
    w64(hdr + 8, sector);
    /* Not a status the device can mean: a device that never writes it fails. */
    w8(status, 0xff);
    u64 addr[3] = {hdr, buf, status};
    u32 len3[3] = {16, len, 1};
    u16 flags[3] = {0, D_WRITE, D_WRITE};
    u16 head = vq_submit(d, 0, addr, len3, flags, 3);
    u32 id = 0;
    if (!vq_wait(d, 0, &id, 0, WAIT_LONG))
        return -1;
    if (id != head)
        return -2;
    return r8(status);
}
