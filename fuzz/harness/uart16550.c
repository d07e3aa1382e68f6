/*
 * fuzz_uart16550: register-level 16550A sequences in a dense 2-byte op
 * format, plus behavioural checks the generic harness cannot know:
 *  - LCR, SCR, DLL/DLM (DLAB=1), IER & 0x0f and MCR & 0x1f read back what
 *    was last written;
 *  - IIR bits 4-5 read 0, bits 6-7 mirror the FIFO enable;
 *  - LSR TEMT implies THRE;
 *  - the IRQ line is only high with an interrupt pending and OUT2 set;
 *  - every THR write (DLAB=0) emits exactly that byte on the backend unless
 *    in loopback or the backend refuses it (uart.h: the wire is instant).
 *
 * Op = [cmd][arg]: reg = cmd & 7, kind = (cmd >> 3) & 7:
 *   0,1 write reg=arg   2,3 read reg (arg&3)+1 times   4 chr_input arg%32
 *   bytes that follow   5 advance arg << 8*(cmd>>6) ns   6 control op `reg`
 *   7 write reg=arg with DLAB set around it (divisor programming)
 */
#include <string.h>

#include "fuzz_target.h"
#include "plugin_target.h"

#define R_THR 0u
#define R_IER 1u
#define R_IIR 2u
#define R_LCR 3u
#define R_MCR 4u
#define R_LSR 5u
#define R_SCR 7u
#define LCR_DLAB 0x80u
#define MCR_OUT2 0x08u
#define MCR_LOOP 0x10u

static struct plugin_target target;

/* What the guest last wrote; valid flags reset when state is replaced. */
static struct {
    int lcr_ok, scr_ok, ier_ok, mcr_ok, dll_ok, dlm_ok, fcr_ok;
    uint8_t lcr, scr, ier, mcr, dll, dlm, fifo_on;
} sh;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    pt_init(&target, "uart16550", 1u << 16);
    return 0;
}

static uint8_t rd(uint32_t reg)
{
    return (uint8_t)pt_read_val(&target, 0, reg, 1);
}

static int dlab(void)
{
    return (rd(R_LCR) & LCR_DLAB) != 0;
}

static int line_high(void)
{
    for (uint32_t g = 0; g < FAKE_HOST_GSIS; g++)
        if (target.host.irq_level[g])
            return 1;
    return 0;
}

static void expect(int ok, const char *what, unsigned got, unsigned want)
{
    if (!ok)
        fuzz_fail("uart16550: %s: read 0x%02x, expected 0x%02x", what, got, want);
}

static void check_read(uint32_t reg, uint8_t v, int was_high, int d)
{
    switch (reg) {
    case 0:
        if (d && sh.dll_ok)
            expect(v == sh.dll, "DLL read-back", v, sh.dll);
        break;
    case R_IER:
        if (d && sh.dlm_ok)
            expect(v == sh.dlm, "DLM read-back", v, sh.dlm);
        if (!d && sh.ier_ok)
            expect(v == (sh.ier & 0x0f), "IER read-back", v, sh.ier & 0x0f);
        break;
    case R_IIR:
        expect((v & 0x30) == 0, "IIR reserved bits 4-5", v, v & ~0x30u);
        if (sh.fcr_ok)
            expect((v & 0xc0) == (sh.fifo_on ? 0xc0 : 0), "IIR FIFO bits", v,
                   sh.fifo_on ? 0xc0 : 0);
        if (was_high && (v & 1))
            fuzz_fail("uart16550: IRQ line high but IIR 0x%02x reports nothing pending", v);
        break;
    case R_LCR:
        if (sh.lcr_ok)
            expect(v == sh.lcr, "LCR read-back", v, sh.lcr);
        break;
    case R_MCR:
        if (sh.mcr_ok)
            expect(v == (sh.mcr & 0x1f), "MCR read-back", v, sh.mcr & 0x1f);
        break;
    case R_LSR:
        if ((v & 0x40) && !(v & 0x20))
            fuzz_fail("uart16550: LSR 0x%02x has TEMT without THRE", v);
        break;
    case R_SCR:
        if (sh.scr_ok)
            expect(v == sh.scr, "SCR read-back", v, sh.scr);
        break;
    default:
        break;
    }
}

static void do_read(uint32_t reg)
{
    int d = sh.lcr_ok ? (sh.lcr & LCR_DLAB) != 0 : dlab();
    int was_high = line_high();
    if (was_high && sh.mcr_ok && (!(sh.mcr & MCR_OUT2) || (sh.mcr & MCR_LOOP)))
        fuzz_fail("uart16550: IRQ line high with MCR 0x%02x (OUT2 off or loopback)", sh.mcr);
    check_read(reg, rd(reg), was_high, d);
}

static void do_write(uint32_t reg, uint8_t v)
{
    struct fake_host *h = &target.host;
    int d = sh.lcr_ok ? (sh.lcr & LCR_DLAB) != 0 : dlab();
    uint64_t before = h->chr_out_total;
    pt_write(&target, 0, reg, 1, v);
    switch (reg) {
    case R_THR:
        if (d) {
            sh.dll = v, sh.dll_ok = 1;
            break;
        }
        {
            uint64_t sent = h->chr_out_total - before;
            int loop = sh.mcr_ok ? (sh.mcr & MCR_LOOP) != 0 : -1;
            int free_flow = !h->chr_absent && !h->chr_stall;
            if (sent > 1 || (loop == 1 && sent))
                fuzz_fail("uart16550: THR write emitted %llu bytes (loopback %d)",
                          (unsigned long long)sent, loop);
            if (loop == 0 && free_flow && sent != 1)
                fuzz_fail("uart16550: THR write 0x%02x did not reach the backend", v);
            if (sent && h->chr_out_len && h->chr_out_len < FAKE_HOST_CHR_OUT &&
                h->chr_out[h->chr_out_len - 1] != v)
                fuzz_fail("uart16550: THR write 0x%02x emitted 0x%02x", v,
                          h->chr_out[h->chr_out_len - 1]);
        }
        break;
    case R_IER:
        if (d)
            sh.dlm = v, sh.dlm_ok = 1;
        else
            sh.ier = v, sh.ier_ok = 1;
        break;
    case R_IIR: /* FCR */
        sh.fifo_on = v & 1, sh.fcr_ok = 1;
        break;
    case R_LCR:
        sh.lcr = v, sh.lcr_ok = 1;
        break;
    case R_MCR:
        sh.mcr = v, sh.mcr_ok = 1;
        break;
    case R_SCR:
        sh.scr = v, sh.scr_ok = 1;
        break;
    default:
        break;
    }
}

static void forget_shadows(void)
{
    memset(&sh, 0, sizeof(sh));
}

static void control(uint32_t which, uint8_t arg)
{
    struct plugin_target *t = &target;
    switch (which) {
    case 0:
        pt_roundtrip(t, "(uart save/restore op)");
        break;
    case 1:
        pt_reset_and_check(t, "(uart reset op)");
        forget_shadows();
        break;
    case 2:
        fake_host_fire_next(&t->host, t->p, t->dev);
        break;
    case 3:
        t->host.chr_absent = arg % 3 == 2;
        t->host.chr_stall = arg % 3 == 1;
        break;
    case 4: /* THR burst: fills an RX FIFO in loopback, floods the backend */
        for (unsigned i = 0; i <= arg % 32; i++)
            do_write(R_THR, (uint8_t)(arg + i));
        break;
    case 5: /* RBR drain */
        for (unsigned i = 0; i <= arg % 32; i++)
            do_read(0);
        break;
    case 6: /* every register once */
        for (uint32_t r = 0; r < 8; r++)
            do_read(r);
        break;
    default: /* the generic sanity of a 16-bit access across registers */
        pt_read(t, 0, arg & 7, 2);
        forget_shadows();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plugin_target *t = &target;
    struct fuzz_in in = {data, size};
    pt_begin(t);
    forget_shadows();
    for (unsigned nops = 0; fin_more(&in) && nops < 4096; nops++) {
        uint8_t cmd = fin_u8(&in), arg = fin_u8(&in);
        uint32_t reg = cmd & 7;
        switch ((cmd >> 3) & 7) {
        case 0:
        case 1:
            do_write(reg, arg);
            break;
        case 2:
        case 3:
            for (unsigned i = 0; i <= (arg & 3u); i++)
                do_read(reg);
            break;
        case 4: {
            const uint8_t *b;
            size_t n = fin_take(&in, arg % 32u, &b);
            pt_chr_input(t, b, n);
            break;
        }
        case 5:
            fake_host_advance(&t->host, t->p, t->dev, (uint64_t)arg << (8 * (cmd >> 6)));
            break;
        case 6:
            control(reg, arg);
            break;
        default: {
            uint8_t lcr = rd(R_LCR);
            pt_write(t, 0, R_LCR, 1, lcr | LCR_DLAB);
            sh.lcr = lcr | LCR_DLAB, sh.lcr_ok = 1;
            do_write(reg, arg);
            if (reg != R_LCR) {
                pt_write(t, 0, R_LCR, 1, lcr);
                sh.lcr = lcr;
            }
            break;
        }
        }
    }
    pt_end(t);
    return 0;
}
