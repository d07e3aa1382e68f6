/*
 * Cloud Hypervisor's /api/v1 endpoints, run on the VMM thread.  Status
 * codes follow what CH returns (not what its OpenAPI text says): 404 when
 * the VM is not created, 400 for a bad method or body, 409 when the VM's
 * state does not allow the action, 500 when the action failed, and 501
 * for CH endpoints nimbus does not implement yet.  Error bodies are JSON
 * arrays of messages, as CH's.  docs/api/nimbus-api.yaml describes exactly
 * this table (tests/unit/test_api_openapi.c checks the two agree).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_routes.h"
#include "api/vmconfig_json.h"
#include "config_limits.h"
#include "device.h"
#include "event_monitor.h"
#include "log.h"
#include "net/tap.h"
#include "virtio/virtio_pci.h"
#include "vmm.h"

/* The Cloud Hypervisor release whose API nimbus answers like. */
#define CH_API_VERSION "51.1.0"

static void reply_json(struct api_request *r, int status, cJSON *body)
{
    r->status = status;
    r->resp_body = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (body && !r->resp_body)
        r->status = 500;
}

static void reply_error(struct api_request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct api_request *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(msg));
    reply_json(r, status, a);
}

static void reply_empty(struct api_request *r)
{
    r->status = 204;
}

/* 404 without a VM, 409 unless the state is one of `ok` (a bit mask). */
static int need_state(struct vmm *v, struct api_request *r, unsigned ok, const char *what)
{
    if (v->state == VMM_NO_VM) {
        reply_error(r, 404, "Error %s: VM is not created", what);
        return 0;
    }
    if (!(ok & (1u << v->state))) {
        reply_error(r, 409, "Error %s: VM is %s", what, vmm_state_name(v->state));
        return 0;
    }
    return 1;
}

#define ST(s) (1u << (s))
#define ST_BOOTED (ST(VMM_RUNNING) | ST(VMM_PAUSED))
#define ST_ANY (ST(VMM_CREATED) | ST_BOOTED | ST(VMM_SHUTDOWN))

/* ---- VMM ------------------------------------------------------------------ */

static void h_ping(struct vmm *v, struct api_request *r)
{
    (void)v;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "build_version", "nimbus-" NIMBUS_VERSION);
    cJSON_AddStringToObject(o, "version", CH_API_VERSION);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddItemToObject(o, "features", cJSON_CreateArray());
    reply_json(r, 200, o);
}

static void h_vmm_shutdown(struct vmm *v, struct api_request *r)
{
    if (v->vm)
        vmm_shutdown_vm(v);
    v->quit = 1;
    v->exit_status = 0;
    reply_empty(r);
}

/* ---- VM lifecycle ---------------------------------------------------------- */

static void h_create(struct vmm *v, struct api_request *r)
{
    if (v->state != VMM_NO_VM) {
        reply_error(r, 409, "Error creating VM: VM is already created");
        return;
    }
    struct vm_config *cfg = malloc(sizeof(*cfg));
    if (!cfg) {
        reply_error(r, 500, "Error creating VM: out of memory");
        return;
    }
    config_init(cfg);
    char err[1024];
    if (vmconfig_from_json(r->body ? r->body : "", r->body_len, cfg, err, sizeof(err)) < 0) {
        config_free(cfg);
        free(cfg);
        reply_error(r, 400, "Error parsing VmConfig: %s", err);
        return;
    }
    /* Where plugins come from is the VMM's business, not the VM's. */
    if (v->vmm_cfg->plugin_dir && !cfg->plugin_dir)
        cfg->plugin_dir = strdup(v->vmm_cfg->plugin_dir);
    v->cfg = cfg;
    v->state = VMM_CREATED;
    reply_empty(r);
}

static void h_boot(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST(VMM_CREATED) | ST(VMM_SHUTDOWN), "booting VM"))
        return;
    char err[1024];
    int e = vmm_boot(v, err, sizeof(err));
    if (e < 0)
        reply_error(r, e == -EINVAL ? 400 : 500, "Error booting VM: %s", err);
    else
        reply_empty(r);
}

static void h_delete(struct vmm *v, struct api_request *r)
{
    if (v->state == VMM_NO_VM) {
        reply_empty(r); /* nothing to delete is not an error (CH) */
        return;
    }
    if (v->vm)
        vmm_shutdown_vm(v);
    config_free(v->cfg);
    free(v->cfg);
    v->cfg = NULL;
    v->state = VMM_NO_VM;
    event_emit("vm", "deleted", NULL);
    reply_empty(r);
}

static void h_shutdown(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_BOOTED, "shutting down VM"))
        return;
    vmm_shutdown_vm(v);
    reply_empty(r);
}

static void h_reboot(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_BOOTED, "rebooting VM"))
        return;
    char err[1024];
    if (vmm_reboot(v, err, sizeof(err)) < 0)
        reply_error(r, 500, "Error rebooting VM: %s", err);
    else
        reply_empty(r);
}

static void h_pause(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST(VMM_RUNNING), "pausing VM"))
        return;
    event_emit("vm", "pausing", NULL);
    if (vm_pause(v->vm) < 0) {
        reply_error(r, 500, "Error pausing VM");
        return;
    }
    v->state = VMM_PAUSED;
    event_emit("vm", "paused", NULL);
    reply_empty(r);
}

static void h_resume(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST(VMM_PAUSED), "resuming VM"))
        return;
    event_emit("vm", "resuming", NULL);
    if (vm_resume(v->vm) < 0) {
        reply_error(r, 500, "Error resuming VM");
        return;
    }
    v->state = VMM_RUNNING;
    event_emit("vm", "resumed", NULL);
    reply_empty(r);
}

static void h_power_button(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST(VMM_RUNNING), "sending the power button"))
        return;
    int e = vm_power_button(v->vm);
    if (e < 0)
        reply_error(r, 500, "Error sending the power button: %s", strerror(-e));
    else
        reply_empty(r);
}

/* ---- information ----------------------------------------------------------- */

static cJSON *device_tree(struct vmm *v)
{
    cJSON *t = cJSON_CreateObject();
    for (struct device *d = v->vm ? v->vm->devices : NULL; d; d = d->next) {
        if (!d->id[0])
            continue;
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", d->id);
        cJSON_AddItemToObject(n, "resources", cJSON_CreateArray());
        cJSON_AddNullToObject(n, "parent");
        cJSON_AddItemToObject(n, "children", cJSON_CreateArray());
        if (d->virtio) {
            char bdf[16];
            snprintf(bdf, sizeof(bdf), "0000:00:%02x.0", virtio_pci_slot(d->virtio) & 0x1f);
            cJSON_AddStringToObject(n, "pci_bdf", bdf);
        }
        cJSON_AddItemToObject(t, d->id, n);
    }
    return t;
}

static void h_info(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_ANY, "getting VM info"))
        return;
    const char *serial_pty = v->vm ? chr_pty_name(v->vm->serial) : NULL;
    const char *console_pty = v->vm ? chr_pty_name(v->vm->console) : NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "config", vmconfig_to_cjson(v->cfg, serial_pty, console_pty));
    cJSON_AddStringToObject(o, "state", vmm_state_name(v->state));
    /* Boot RAM plus what was hot-plugged (there is no balloon to subtract). */
    cJSON_AddNumberToObject(o, "memory_actual_size",
                            (double)(v->cfg->memory.size + v->cfg->memory.hotplugged_size));
    cJSON_AddItemToObject(o, "device_tree", device_tree(v));
    reply_json(r, 200, o);
}

static void emit_counter(void *ctx, const char *name, uint64_t value)
{
    cJSON_AddNumberToObject((cJSON *)ctx, name, (double)value);
}

static void h_counters(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_BOOTED, "getting VM counters"))
        return;
    cJSON *o = cJSON_CreateObject();
    for (struct device *d = v->vm->devices; d; d = d->next) {
        if (!d->id[0])
            continue;
        cJSON *c = cJSON_CreateObject();
        if (device_counters(d, emit_counter, c) < 0 || !c->child) {
            cJSON_Delete(c);
            continue;
        }
        cJSON_AddItemToObject(o, d->id, c);
    }
    reply_json(r, 200, o);
}

/* ---- devices ----------------------------------------------------------------- */

static int id_in_use(const struct vm_config *cfg, const char *id)
{
    for (uint32_t i = 0; i < cfg->ndisks; i++)
        if (cfg->disks[i].id && strcmp(cfg->disks[i].id, id) == 0)
            return 1;
    for (uint32_t i = 0; i < cfg->nnets; i++)
        if (cfg->nets[i].id && strcmp(cfg->nets[i].id, id) == 0)
            return 1;
    for (uint32_t i = 0; i < cfg->ndevices; i++)
        if (cfg->devices[i].id && strcmp(cfg->devices[i].id, id) == 0)
            return 1;
    return 0;
}

/* A hot-plugged device's default name: the first free "<prefix>N", as CH. */
static char *free_id(const struct vm_config *cfg, const char *prefix)
{
    for (uint32_t n = 0;; n++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%u", prefix, n);
        if (!id_in_use(cfg, id))
            return strdup(id);
    }
}

/* CH's answer to a device added to a booted VM: {"id", "bdf"}. */
static void reply_pci_info(struct api_request *r, const char *id, uint32_t slot)
{
    char bdf[16];
    snprintf(bdf, sizeof(bdf), "0000:00:%02x.0", slot & 0x1f);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "bdf", bdf);
    reply_json(r, 200, o);
}

/*
 * Before boot a NIC joins the pending config (204, as CH); booted, it is
 * hot-plugged (200 with its PCI address).  The taps come as SCM_RIGHTS with
 * the request and the config owns them from here.
 */
static void h_add_net(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_ANY, "adding net"))
        return;
    if (v->cfg->nnets >= CONFIG_MAX_NETS) {
        reply_error(r, 400, "Error adding net: at most %u NICs", CONFIG_MAX_NETS);
        return;
    }
    struct net_config nc;
    memset(&nc, 0, sizeof(nc));
    int fds_in_body = 0;
    char err[1024];
    if (netconfig_from_json(r->body ? r->body : "", r->body_len, &nc, &fds_in_body, err,
                            sizeof(err)) < 0) {
        net_config_free(&nc);
        reply_error(r, 400, "Error parsing NetConfig: %s", err);
        return;
    }
    if (fds_in_body)
        log_warn("vm.add-net: \"fds\" in the body are ignored; send them as SCM_RIGHTS");
    if (nc.id && id_in_use(v->cfg, nc.id)) {
        reply_error(r, 409, "Error adding net: identifier %s is already in use", nc.id);
        net_config_free(&nc);
        return;
    }
    if (netconfig_check_unique(v->cfg, &nc, err, sizeof(err)) < 0) {
        reply_error(r, 409, "Error adding net: %s", err);
        net_config_free(&nc);
        return;
    }
    if (r->nfds) {
        char ifname[32];
        if (nc.user || tap_check_fds(r->fds, r->nfds, ifname, err, sizeof(err)) < 0) {
            reply_error(r, 400, "Error adding net: %s",
                        nc.user ? "user=on takes no file descriptors" : err);
            net_config_free(&nc);
            return;
        }
        if (nc.num_queues != 2 * r->nfds)
            log_info("vm.add-net: %u tap fd(s) received: %u queues", r->nfds, 2 * r->nfds);
        nc.num_queues = 2 * r->nfds;
        /* A tap handed over is the caller's to configure (CH ignores ip/mask). */
        nc.ip_given = nc.mask_given = 0;
        memcpy(nc.fds, r->fds, r->nfds * sizeof(int));
        nc.nfds = r->nfds;
        nc.fds_owned = 1;
        for (unsigned i = 0; i < r->nfds; i++)
            r->fds[i] = -1;
    }
    struct vm_config *cfg = v->cfg;
    if ((v->state == VMM_RUNNING || v->state == VMM_PAUSED) && !nc.id &&
        !(nc.id = free_id(cfg, "_net"))) {
        net_config_free(&nc);
        reply_error(r, 500, "Error adding net: out of memory");
        return;
    }
    cfg->nets[cfg->nnets++] = nc;
    if (v->state != VMM_RUNNING && v->state != VMM_PAUSED) {
        reply_empty(r);
        return;
    }
    uint32_t slot = 0;
    struct net_config *added = &cfg->nets[cfg->nnets - 1];
    if (vm_hotplug_net(v->vm, added, &slot, err, sizeof(err)) < 0) {
        net_config_free(&cfg->nets[--cfg->nnets]);
        reply_error(r, 500, "Error adding net: %s", err);
        return;
    }
    reply_pci_info(r, added->id, slot);
}

/* Before boot the disk joins the config (204); after, it is hot-plugged. */
static void h_add_disk(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_ANY, "adding disk"))
        return;
    struct vm_config *cfg = v->cfg;
    if (cfg->ndisks >= CONFIG_MAX_DISKS) {
        reply_error(r, 400, "Error adding disk: at most %u disks", CONFIG_MAX_DISKS);
        return;
    }
    struct disk_config dc;
    char err[1024];
    if (diskconfig_from_json(r->body ? r->body : "", r->body_len, cfg, &dc, err,
                             sizeof(err)) < 0) {
        disk_config_free(&dc);
        reply_error(r, 400, "Error parsing DiskConfig: %s", err);
        return;
    }
    if (dc.id && id_in_use(cfg, dc.id)) {
        reply_error(r, 400, "Error adding disk: identifier %s is already in use", dc.id);
        disk_config_free(&dc);
        return;
    }
    /* Before boot the ids of the disks without one are given at boot, by
     * position: naming this one now could take one of theirs. */
    if (v->state != VMM_RUNNING && v->state != VMM_PAUSED) {
        cfg->disks[cfg->ndisks++] = dc;
        reply_empty(r);
        return;
    }
    if (!dc.id && !(dc.id = free_id(cfg, "_disk"))) {
        disk_config_free(&dc);
        reply_error(r, 500, "Error adding disk: out of memory");
        return;
    }
    cfg->disks[cfg->ndisks++] = dc;
    uint32_t slot = 0;
    if (vm_hotplug_disk(v->vm, &cfg->disks[cfg->ndisks - 1], &slot, err, sizeof(err)) < 0) {
        disk_config_free(&cfg->disks[--cfg->ndisks]);
        reply_error(r, 500, "Error adding disk: %s", err);
        return;
    }
    reply_pci_info(r, cfg->disks[cfg->ndisks - 1].id, slot);
}

/*
 * A plugin an API client names: a bare name looked up in the plugin
 * folders, never a path, so a client cannot make nimbus load code of its
 * choosing (the command line, run by the VM's owner, may give paths).
 */
static int plugin_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* The body's string member `key`: 1 (set, *out), 0 (absent or null), -1 (not a string). */
static int body_string(const cJSON *root, const char *key, const char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsString(j) || !j->valuestring)
        return -1;
    *out = j->valuestring;
    return 1;
}

/* 0, or the status refusing vm.add-device's request with msg. */
static int check_add_device(const struct vm_config *cfg, const char *plugin, const char *path,
                            const char *id, char *msg, size_t len)
{
    if (!plugin && path) {
        snprintf(msg, len, "VFIO device passthrough (\"path\") is not implemented by nimbus; "
                           "give a \"plugin\"");
        return 501;
    }
    if (!plugin) {
        snprintf(msg, len, "\"plugin\" is required");
        return 400;
    }
    if (!plugin_name_ok(plugin)) {
        snprintf(msg, len, "plugin '%.80s' is not a plugin name (letters, digits, '_' and '-'; "
                           "no paths)", plugin);
        return 400;
    }
    if (id && (!id[0] || strlen(id) >= sizeof(((struct device *)0)->id) || strchr(id, ','))) {
        snprintf(msg, len, "id '%.80s' is empty, too long or has a ','", id);
        return 400;
    }
    if (id && id_in_use(cfg, id)) {
        snprintf(msg, len, "identifier %.80s is already in use", id);
        return 400;
    }
    if (cfg->ndevices >= CONFIG_MAX_DEVICES) {
        snprintf(msg, len, "at most %u devices", CONFIG_MAX_DEVICES);
        return 400;
    }
    return 0;
}

/*
 * vm.add-device: {"plugin": NAME, "options": "key=value,...", "id": ID}
 * adds a device plugin, as --device does.  Before boot it joins the
 * config; booted, a virtio plugin is hot-plugged (200 {"id","bdf"}).  CH's
 * VFIO form ({"path": sysfs device}) is not implemented: 501.
 */
static void h_add_device(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_ANY, "adding device"))
        return;
    struct vm_config *cfg = v->cfg;
    cJSON *root = cJSON_ParseWithLength(r->body ? r->body : "", r->body_len);
    const char *plugin, *options, *id, *path;
    if (!cJSON_IsObject(root) || body_string(root, "plugin", &plugin) < 0 ||
        body_string(root, "options", &options) < 0 || body_string(root, "id", &id) < 0 ||
        body_string(root, "path", &path) < 0) {
        cJSON_Delete(root);
        reply_error(r, 400, "Error parsing DeviceConfig: expected {\"plugin\": \"<name>\", "
                            "\"options\": \"key=value,...\", \"id\": \"<id>\"}");
        return;
    }
    char msg[512];
    int status = check_add_device(cfg, plugin, path, id, msg, sizeof(msg));
    if (status) {
        cJSON_Delete(root);
        reply_error(r, status, "Error adding device: %s", msg);
        return;
    }
    int booted = v->state == VMM_RUNNING || v->state == VMM_PAUSED;
    struct device_config dc = {strdup(plugin), options ? strdup(options) : NULL,
                               id ? strdup(id) : booted ? free_id(cfg, "_device") : NULL};
    cJSON_Delete(root);
    if (!dc.plugin || (options && !dc.options) || ((id || booted) && !dc.id)) {
        device_config_free(&dc);
        reply_error(r, 500, "Error adding device: out of memory");
        return;
    }
    if (!booted) {
        cfg->devices[cfg->ndevices++] = dc;
        reply_empty(r);
        return;
    }
    uint32_t slot = 0;
    char err[1024];
    if (vm_hotplug_device(v->vm, dc.plugin, dc.options ? dc.options : "", dc.id, &slot, err,
                          sizeof(err)) < 0) {
        device_config_free(&dc);
        reply_error(r, 500, "Error adding device: %s", err);
        return;
    }
    cfg->devices[cfg->ndevices++] = dc;
    reply_pci_info(r, dc.id, slot);
}

/* The device leaves the config: a reboot must not bring it back. */
static void forget_device(struct vm_config *cfg, const char *id)
{
    for (uint32_t i = 0; i < cfg->ndisks; i++)
        if (cfg->disks[i].id && strcmp(cfg->disks[i].id, id) == 0) {
            disk_config_free(&cfg->disks[i]);
            memmove(&cfg->disks[i], &cfg->disks[i + 1],
                    (cfg->ndisks - i - 1) * sizeof(cfg->disks[0]));
            cfg->ndisks--;
            return;
        }
    for (uint32_t i = 0; i < cfg->nnets; i++)
        if (cfg->nets[i].id && strcmp(cfg->nets[i].id, id) == 0) {
            net_config_free(&cfg->nets[i]);
            memmove(&cfg->nets[i], &cfg->nets[i + 1],
                    (cfg->nnets - i - 1) * sizeof(cfg->nets[0]));
            cfg->nnets--;
            return;
        }
    for (uint32_t i = 0; i < cfg->ndevices; i++)
        if (cfg->devices[i].id && strcmp(cfg->devices[i].id, id) == 0) {
            device_config_free(&cfg->devices[i]);
            memmove(&cfg->devices[i], &cfg->devices[i + 1],
                    (cfg->ndevices - i - 1) * sizeof(cfg->devices[0]));
            cfg->ndevices--;
            return;
        }
}

static void device_gone(void *ctx, const char *id)
{
    struct vmm *v = ctx;
    if (id[0])
        forget_device(v->cfg, id);
}

void vmm_hotplug_ejected(struct vmm *v)
{
    if (!v->vm || !v->cfg)
        return;
    vm_hotplug_ejected(v->vm, device_gone, v);
    /* A reboot keeps the vCPUs the guest has, whoever asked for the eject. */
    if (v->vm->cpuhp && vm_cpus_ejected(v->vm))
        v->cfg->cpus.boot = vm_vcpus_present(v->vm);
}

/* A JSON integer 0..max, or absent (*given = 0); -1 for anything else. */
static int body_uint(const cJSON *root, const char *key, double max, uint64_t *out, int *given)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *given = j != NULL && !cJSON_IsNull(j);
    if (!*given)
        return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > max ||
        j->valuedouble != (double)(uint64_t)j->valuedouble)
        return -1;
    *out = (uint64_t)j->valuedouble;
    return 0;
}

/* desired_vcpus; -1 after replying with an error. */
static int resize_vcpus(struct vmm *v, struct api_request *r, uint64_t vcpus, int booted)
{
    struct vm_config *cfg = v->cfg;
    if (vcpus == 0 || vcpus > cfg->cpus.max) {
        reply_error(r, 400, "Error resizing VM: desired_vcpus=%llu is outside 1..max_vcpus (%u)",
                    (unsigned long long)vcpus, cfg->cpus.max);
        return -1;
    }
    if (!booted) {
        cfg->cpus.boot = (uint32_t)vcpus;
        return 0;
    }
    char err[512];
    int e = vm_resize_vcpus(v->vm, (uint32_t)vcpus, err, sizeof(err));
    if (e == -EBUSY) {
        reply_error(r, 429, "Error resizing VM: Too Many Requests: %s", err);
        return -1;
    }
    if (e < 0) {
        reply_error(r, e == -EINVAL || e == -ENOTSUP ? 400 : 500, "Error resizing VM: %s", err);
        return -1;
    }
    cfg->cpus.boot = (uint32_t)vcpus;
    return 0;
}

/*
 * vm.resize: desired_vcpus through ACPI CPU hotplug (204 at once; a
 * removal ends when the guest ejects the CPUs, and until then another
 * resize gets 429, which Kata retries) and desired_ram through ACPI
 * memory hotplug (grow only).  Before boot both edit the config.  A
 * balloon is not implemented.  A bad desired_ram is refused before the
 * vCPUs change.
 */
static void h_resize(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_ANY, "resizing VM"))
        return;
    cJSON *root = cJSON_ParseWithLength(r->body ? r->body : "", r->body_len);
    uint64_t vcpus = 0, ram = 0, balloon = 0;
    int has_vcpus, has_ram, has_balloon;
    if (!cJSON_IsObject(root) ||
        body_uint(root, "desired_vcpus", CLI_MAX_VCPUS, &vcpus, &has_vcpus) < 0 ||
        body_uint(root, "desired_ram", 9007199254740992.0, &ram, &has_ram) < 0 ||
        body_uint(root, "desired_balloon", 9007199254740992.0, &balloon, &has_balloon) < 0) {
        cJSON_Delete(root);
        reply_error(r, 400,
                    "Error parsing VmResizeData: expected {\"desired_vcpus\": 1..%u, "
                    "\"desired_ram\": bytes, \"desired_balloon\": bytes}",
                    CLI_MAX_VCPUS);
        return;
    }
    cJSON_Delete(root);
    struct vm_config *cfg = v->cfg;
    if (has_balloon && balloon != 0) {
        reply_error(r, 501, "Error resizing VM: a balloon (desired_balloon) is not implemented "
                            "by nimbus yet");
        return;
    }
    char err[512];
    /* Refused before anything changes, vCPUs included. */
    if (has_ram) {
        int e = vm_memory_resize_check(&cfg->memory, ram, err, sizeof(err));
        if (e < 0) {
            reply_error(r, 400, "Error resizing VM: %s", err);
            return;
        }
    }
    int booted = v->state == VMM_RUNNING || v->state == VMM_PAUSED;
    if (booted)
        event_emit("vm", "resizing", NULL);
    if (has_vcpus && resize_vcpus(v, r, vcpus, booted) < 0)
        return;
    if (has_ram && ram != cfg->memory.size + cfg->memory.hotplugged_size) {
        if (booted && vm_resize_ram(v->vm, ram, err, sizeof(err)) < 0) {
            reply_error(r, 500, "Error resizing VM: %s", err);
            return;
        }
        cfg->memory.hotplugged_size = ram - cfg->memory.size;
    }
    if (booted)
        event_emit("vm", "resized", NULL);
    reply_empty(r);
}

/*
 * Booted: the guest is asked to eject the device (204 at once, as CH); it
 * goes when the guest's _EJ0 runs.  Before boot it just leaves the config.
 */
static void h_remove_device(struct vmm *v, struct api_request *r)
{
    if (!need_state(v, r, ST_ANY, "removing device"))
        return;
    cJSON *root = cJSON_ParseWithLength(r->body ? r->body : "", r->body_len);
    const cJSON *idj = root ? cJSON_GetObjectItemCaseSensitive(root, "id") : NULL;
    if (!cJSON_IsString(idj) || !idj->valuestring || !idj->valuestring[0]) {
        cJSON_Delete(root);
        reply_error(r, 400, "Error parsing VmRemoveDeviceData: expected {\"id\": \"...\"}");
        return;
    }
    char id[64];
    snprintf(id, sizeof(id), "%s", idj->valuestring);
    int long_id = strlen(idj->valuestring) >= sizeof(id);
    cJSON_Delete(root);
    if (long_id || !id_in_use(v->cfg, id)) {
        reply_error(r, 404, "Error removing device: no device with id %.64s", id);
        return;
    }
    if (v->state != VMM_RUNNING && v->state != VMM_PAUSED) {
        forget_device(v->cfg, id);
        reply_empty(r);
        return;
    }
    int e = vm_unplug_request(v->vm, id);
    if (e == -ENOENT)
        reply_error(r, 404, "Error removing device: no device with id %s", id);
    else if (e < 0)
        reply_error(r, 400, "Error removing device: %s cannot be unplugged", id);
    else
        reply_empty(r);
}

/* ---- dispatch ------------------------------------------------------------------ */

static const struct api_route routes[] = {
    {"vmm.ping", "GET", API_BODY_NONE, h_ping},
    {"vmm.shutdown", "PUT", API_BODY_NONE, h_vmm_shutdown},
    {"vm.create", "PUT", API_BODY_REQUIRED, h_create},
    {"vm.boot", "PUT", API_BODY_NONE, h_boot},
    {"vm.delete", "PUT", API_BODY_NONE, h_delete},
    {"vm.shutdown", "PUT", API_BODY_NONE, h_shutdown},
    {"vm.reboot", "PUT", API_BODY_NONE, h_reboot},
    {"vm.power-button", "PUT", API_BODY_NONE, h_power_button},
    {"vm.pause", "PUT", API_BODY_NONE, h_pause},
    {"vm.resume", "PUT", API_BODY_NONE, h_resume},
    {"vm.info", "GET", API_BODY_NONE, h_info},
    {"vm.counters", "GET", API_BODY_NONE, h_counters},
    {"vm.add-net", "PUT", API_BODY_REQUIRED, h_add_net},
    {"vm.add-disk", "PUT", API_BODY_REQUIRED, h_add_disk},
    {"vm.remove-device", "PUT", API_BODY_REQUIRED, h_remove_device},
    {"vm.add-device", "PUT", API_BODY_REQUIRED, h_add_device},
    {"vm.resize", "PUT", API_BODY_REQUIRED, h_resize},
    /* Cloud Hypervisor endpoints still to come: 501. */
    {"vm.add-fs", "PUT", API_BODY_ANY, NULL},
    {"vm.add-generic-vhost-user", "PUT", API_BODY_ANY, NULL},
    {"vm.add-pmem", "PUT", API_BODY_ANY, NULL},
    {"vm.add-user-device", "PUT", API_BODY_ANY, NULL},
    {"vm.add-vdpa", "PUT", API_BODY_ANY, NULL},
    {"vm.add-vsock", "PUT", API_BODY_ANY, NULL},
    {"vm.resize-disk", "PUT", API_BODY_ANY, NULL},
    {"vm.resize-zone", "PUT", API_BODY_ANY, NULL},
    {"vm.snapshot", "PUT", API_BODY_ANY, NULL},
    {"vm.restore", "PUT", API_BODY_ANY, NULL},
    {"vm.coredump", "PUT", API_BODY_ANY, NULL},
    {"vm.nmi", "PUT", API_BODY_ANY, NULL},
    {"vm.send-migration", "PUT", API_BODY_ANY, NULL},
    {"vm.receive-migration", "PUT", API_BODY_ANY, NULL},
};

const struct api_route *api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

void vmm_handle_request(struct vmm *v, struct api_request *r)
{
    const struct api_route *rt = api_route_find(r->path, r->method, routes,
                                                sizeof(routes) / sizeof(routes[0]), &r->status);
    if (!rt) {
        if (r->status == 404)
            reply_error(r, 404, "No endpoint %.200s", r->path);
        else
            reply_error(r, 400, "%s is not a method of %.200s", r->method, r->path);
        return;
    }
    if (!rt->fn) {
        reply_error(r, 501, "%s is not implemented by nimbus yet", rt->name);
        return;
    }
    if (rt->body == API_BODY_NONE && r->body_len) {
        reply_error(r, 400, "%s takes no request body", rt->name);
        return;
    }
    if (rt->body == API_BODY_REQUIRED && !r->body_len) {
        reply_error(r, 400, "%s needs a JSON request body", rt->name);
        return;
    }
    rt->fn(v, r);
}
