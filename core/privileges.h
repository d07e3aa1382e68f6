/* Giving up capabilities once the VM's privileged set-up is done. */
#ifndef NIMBUS_PRIVILEGES_H
#define NIMBUS_PRIVILEGES_H

/*
 * Keep, of the capabilities nimbus has, only CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH (a reboot reopens the disks and kernel by path, as
 * root may have named files of other users) and, when `keep_net_admin`,
 * CAP_NET_ADMIN (an API client may still create a VM with a new tap).
 * Effective, permitted, inheritable and ambient sets alike; irreversible.
 * 0, or -errno.  A process without capabilities is left as it is.
 */
int privileges_drop(int keep_net_admin);

#endif
