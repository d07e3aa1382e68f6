/*
 * The payload of a VM that boots its disk: ask the boot-disk reader
 * (bootdisk/) at every (re)build, then let --initramfs and --cmdline
 * override what the image says, as the issue of a firmware-less cloud
 * image requires.
 */
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"
#include "bootdisk/bootdisk.h"
#include "log.h"
#include "vm.h"

int vm_payload_from_disk(const struct vm_config *cfg, struct bootdisk_payload *p, char *cmdline,
                         size_t cmdline_len, struct boot_request *breq, char *err, size_t errlen)
{
    char why[2048];
    if (!cfg->bootdisk) {
        snprintf(err, errlen, "no --kernel or --firmware: booting the disk itself works only "
                 "for disks on nimbus's command line (its reader starts before any thread)");
        return -1;
    }
    if (bootdisk_resolve(cfg->bootdisk, p, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "cannot boot from the disk: %s. Give --kernel (and --initramfs, "
                 "--cmdline \"root=...\") to boot it anyway", why);
        return -1;
    }
    log_info("bootdisk: %s", p->what);
    breq->kernel_path = NULL;
    breq->kernel_buf = p->kernel;
    breq->kernel_len = p->kernel_len;
    breq->kernel_name = "the disk's kernel";
    breq->initrd_buf = p->initrd;
    breq->initrd_len = p->initrd_len;
    if (cfg->cmdline) {
        breq->cmdline = cfg->cmdline;
        return 0;
    }
    /* A made-up root= has no console=: the one this VM shows. */
    const char *console = "";
    if (p->cmdline_made)
        console = cfg->serial.mode != CHR_OFF && cfg->serial.mode != CHR_NULL ? " console=ttyS0"
                  : cfg->console.mode != CHR_OFF ? " console=hvc0" : "";
    int n = snprintf(cmdline, cmdline_len, "%s%s", p->cmdline, console);
    if (n < 0 || (size_t)n >= cmdline_len) {
        snprintf(err, errlen, "cannot boot from the disk: its command line is longer than %zu "
                 "bytes", cmdline_len - 1);
        bootdisk_payload_free(p);
        return -1;
    }
    log_info("bootdisk: command line: %s", cmdline);
    breq->cmdline = cmdline;
    return 0;
}
