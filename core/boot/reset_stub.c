#include <stdint.h>

#include "../layout.h"
#include "boot.h"

int boot_install_reset_stub(struct guest_mem *gm)
{
    /* Real mode, CS=F000 IP=FFF0: the same reset the i8042 path gives. */
    static const uint8_t stub[16] = {
        0xfa,       /* cli */
        0xb0, 0xfe, /* mov al, 0xfe: pulse the reset output line */
        0xe6, 0x64, /* out 0x64, al */
        0xf4,       /* hlt (not reached when the reset is taken) */
        0xeb, 0xfd, /* jmp back to hlt */
        0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
    };
    return gm_write(gm, LAYOUT_RESET_VECTOR, stub, sizeof(stub));
}
