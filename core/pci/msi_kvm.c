/*
 * pci_msi_ops over KVM irqfds and GSI routes (see msi_kvm.h).
 *
 * Two locks so that delivery never waits for a routing update (which
 * costs an SRCU grace period in the kernel):
 *   route_lock  slot messages and KVM_SET_GSI_ROUTING, serialised so the
 *               kernel always ends up with the newest table;
 *   fd_lock     (rwlock) slot ownership and eventfds: fire() read-locks it,
 *               alloc/release write-lock it.
 * Order: route_lock before fd_lock.
 */
#include "msi_kvm.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../log.h"

/* KVM's limit on GSIs and routing entries on x86 (KVM_MAX_IRQ_ROUTES). */
#define MAX_GSIS 4096u

struct msi_slot {
    int efd;   /* -1 when the slot is free */
    bool routed;
    uint64_t addr;
    uint32_t data;
};

struct msi_kvm {
    struct kvm *kvm;
    pthread_mutex_t route_lock;
    pthread_rwlock_t fd_lock;
    uint32_t nslots;
    struct msi_slot *slots;
};

size_t msi_kvm_default_routes(struct kvm_irq_routing_entry *out)
{
    size_t n = 0;
    for (uint32_t gsi = 0; gsi < MSI_KVM_FIRST_GSI; gsi++) {
        out[n] = (struct kvm_irq_routing_entry){.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP};
        out[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
        out[n].u.irqchip.pin = gsi;
        n++;
    }
    return n;
}

/* Hand KVM the default routes plus every routed slot (route_lock held). */
static int commit_routes(struct msi_kvm *m)
{
    size_t nmsi = 0;
    for (uint32_t i = 0; i < m->nslots; i++)
        nmsi += m->slots[i].routed;
    size_t n = MSI_KVM_DEFAULT_ROUTES + nmsi;
    struct kvm_irq_routing *t =
        calloc(1, sizeof(*t) + n * sizeof(struct kvm_irq_routing_entry));
    if (!t)
        return -ENOMEM;
    size_t k = msi_kvm_default_routes(t->entries);
    for (uint32_t i = 0; i < m->nslots; i++) {
        const struct msi_slot *s = &m->slots[i];
        if (!s->routed)
            continue;
        struct kvm_irq_routing_entry *e = &t->entries[k++];
        e->gsi = MSI_KVM_FIRST_GSI + i;
        e->type = KVM_IRQ_ROUTING_MSI;
        e->u.msi.address_lo = (uint32_t)s->addr;
        e->u.msi.address_hi = (uint32_t)(s->addr >> 32);
        e->u.msi.data = s->data;
    }
    t->nr = (uint32_t)k;
    int r = ioctl(m->kvm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0 ? -errno : 0;
    free(t);
    return r;
}

static int irqfd(struct msi_kvm *m, int efd, uint32_t slot, bool assign)
{
    struct kvm_irqfd req = {.fd = (uint32_t)efd,
                            .gsi = MSI_KVM_FIRST_GSI + slot,
                            .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
    return ioctl(m->kvm->vm_fd, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

static int kvm_alloc(void *opaque, uint32_t *handle)
{
    struct msi_kvm *m = opaque;
    int r = -ENOSPC;
    pthread_rwlock_wrlock(&m->fd_lock);
    for (uint32_t i = 0; i < m->nslots; i++) {
        if (m->slots[i].efd >= 0)
            continue;
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0) {
            r = -errno;
            break;
        }
        r = irqfd(m, efd, i, true);
        if (r < 0) {
            close(efd);
            break;
        }
        m->slots[i].efd = efd;
        *handle = i;
        break;
    }
    pthread_rwlock_unlock(&m->fd_lock);
    return r;
}

static bool slot_live(const struct msi_kvm *m, uint32_t handle)
{
    return handle < m->nslots && m->slots[handle].efd >= 0;
}

static void kvm_release(void *opaque, uint32_t handle)
{
    struct msi_kvm *m = opaque;
    pthread_mutex_lock(&m->route_lock);
    pthread_rwlock_wrlock(&m->fd_lock);
    if (slot_live(m, handle)) {
        struct msi_slot *s = &m->slots[handle];
        if (irqfd(m, s->efd, handle, false) < 0)
            log_warn("KVM_IRQFD deassign of GSI %u failed", MSI_KVM_FIRST_GSI + handle);
        close(s->efd);
        s->efd = -1;
        if (s->routed) {
            s->routed = false;
            if (commit_routes(m) < 0)
                log_warn("cannot drop the MSI route of GSI %u", MSI_KVM_FIRST_GSI + handle);
        }
    }
    pthread_rwlock_unlock(&m->fd_lock);
    pthread_mutex_unlock(&m->route_lock);
}

static int kvm_route(void *opaque, uint32_t handle, uint64_t addr, uint32_t data)
{
    struct msi_kvm *m = opaque;
    pthread_mutex_lock(&m->route_lock);
    pthread_rwlock_rdlock(&m->fd_lock);
    bool live = slot_live(m, handle);
    pthread_rwlock_unlock(&m->fd_lock);
    int r = -EINVAL;
    if (live) {
        struct msi_slot *s = &m->slots[handle];
        struct msi_slot old = *s;
        s->routed = true;
        s->addr = addr;
        s->data = data;
        r = commit_routes(m);
        if (r < 0) {
            s->routed = old.routed;
            s->addr = old.addr;
            s->data = old.data;
        }
    }
    pthread_mutex_unlock(&m->route_lock);
    return r;
}

static int kvm_fire(void *opaque, uint32_t handle)
{
    struct msi_kvm *m = opaque;
    int r = -EINVAL;
    pthread_rwlock_rdlock(&m->fd_lock);
    if (slot_live(m, handle)) {
        uint64_t one = 1;
        r = write(m->slots[handle].efd, &one, sizeof(one)) == (ssize_t)sizeof(one) ? 0 : -errno;
    }
    pthread_rwlock_unlock(&m->fd_lock);
    return r;
}

const struct pci_msi_ops msi_kvm_ops = {
    .alloc = kvm_alloc, .release = kvm_release, .route = kvm_route, .fire = kvm_fire};

struct msi_kvm *msi_kvm_create(struct kvm *k, char *err, size_t errlen)
{
    if (!k || k->vm_fd < 0) {
        snprintf(err, errlen, "MSI: no KVM VM");
        return NULL;
    }
    int gsis = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
    if (gsis <= (int)MSI_KVM_FIRST_GSI) {
        snprintf(err, errlen, "KVM lacks KVM_CAP_IRQ_ROUTING, which PCI MSI-X needs");
        return NULL;
    }
    if (ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) <= 0) {
        snprintf(err, errlen, "KVM lacks KVM_CAP_IRQFD, which PCI MSI-X needs");
        return NULL;
    }
    struct msi_kvm *m = calloc(1, sizeof(*m));
    uint32_t n = ((uint32_t)gsis < MAX_GSIS ? (uint32_t)gsis : MAX_GSIS) - MSI_KVM_FIRST_GSI;
    if (m)
        m->slots = calloc(n, sizeof(*m->slots));
    if (!m || !m->slots) {
        free(m);
        snprintf(err, errlen, "MSI: out of memory");
        return NULL;
    }
    m->kvm = k;
    m->nslots = n;
    for (uint32_t i = 0; i < n; i++)
        m->slots[i].efd = -1;
    pthread_mutex_init(&m->route_lock, NULL);
    pthread_rwlock_init(&m->fd_lock, NULL);
    /* Drop KVM's PIC routes now, before any device raises a legacy line. */
    int r = commit_routes(m);
    if (r < 0) {
        snprintf(err, errlen, "KVM_SET_GSI_ROUTING: %s", strerror(-r));
        msi_kvm_destroy(m);
        return NULL;
    }
    return m;
}

void msi_kvm_destroy(struct msi_kvm *m)
{
    if (!m)
        return;
    bool had_routes = false;
    for (uint32_t i = 0; i < m->nslots; i++) {
        struct msi_slot *s = &m->slots[i];
        had_routes |= s->routed;
        s->routed = false;
        if (s->efd >= 0) {
            irqfd(m, s->efd, i, false);
            close(s->efd);
            s->efd = -1;
        }
    }
    /* Leave KVM with the legacy routes only, as if no MSI slot had existed. */
    if (had_routes && commit_routes(m) < 0)
        log_warn("cannot restore the legacy GSI routing");
    pthread_mutex_destroy(&m->route_lock);
    pthread_rwlock_destroy(&m->fd_lock);
    free(m->slots);
    free(m);
}

int msi_kvm_eventfd(struct msi_kvm *m, uint32_t handle)
{
    if (!m)
        return -1;
    pthread_rwlock_rdlock(&m->fd_lock);
    int fd = slot_live(m, handle) ? m->slots[handle].efd : -1;
    pthread_rwlock_unlock(&m->fd_lock);
    return fd;
}
