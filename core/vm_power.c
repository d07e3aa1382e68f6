/*
 * The ACPI power button of a running VM.  vm->lock is held across the
 * state check and the press: vm_destroy moves the state to SHUTDOWN under
 * that lock before it frees the GED, so a press is either refused or
 * finished by then.
 */
#include <errno.h>

#include "acpi/ged.h"
#include "log.h"
#include "vm.h"

int vm_power_button(struct vm *vm)
{
    int r = -EINVAL;
    pthread_mutex_lock(&vm->lock);
    if (vm->ged && vm->state == VM_RUNNING && vm->exit_reason == VM_EXIT_NONE) {
        ged_power_button(vm->ged);
        r = 0;
    }
    pthread_mutex_unlock(&vm->lock);
    if (r == 0)
        log_info("ACPI power button pressed");
    return r;
}
