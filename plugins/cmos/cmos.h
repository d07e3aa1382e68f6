/*
 * MC146818 RTC + PC CMOS RAM.
 *
 * The guest's clock is the host wall clock plus an offset the guest changes
 * by setting the time.  Nothing ticks in the background: the time registers
 * are computed when read, and the update/alarm/periodic flags are worked out
 * for the interval since they were last looked at.  A host timer is armed
 * only while an enabled interrupt could be raised (and the line is low).
 */
#ifndef NIMBUS_CMOS_CMOS_H
#define NIMBUS_CMOS_CMOS_H

#include <stdint.h>

#include <nimbus/plugin_abi.h>

#define CMOS_SIZE 128u
#define CMOS_TIMER 0u /* host timer id */

/* RTC register indices. */
#define RTC_SEC 0x00u
#define RTC_SEC_ALARM 0x01u
#define RTC_MIN 0x02u
#define RTC_MIN_ALARM 0x03u
#define RTC_HOUR 0x04u
#define RTC_HOUR_ALARM 0x05u
#define RTC_WDAY 0x06u
#define RTC_MDAY 0x07u
#define RTC_MONTH 0x08u
#define RTC_YEAR 0x09u
#define RTC_REG_A 0x0au
#define RTC_REG_B 0x0bu
#define RTC_REG_C 0x0cu
#define RTC_REG_D 0x0du
#define RTC_CENTURY 0x32u /* PC convention, named by the ACPI FADT */

#define REG_A_UIP 0x80u
#define REG_A_DV 0x70u
#define REG_A_DV_RUN 0x20u /* 32.768 kHz time base, divider running */
#define REG_A_RS 0x0fu

#define REG_B_SET 0x80u
#define REG_B_PIE 0x40u
#define REG_B_AIE 0x20u
#define REG_B_UIE 0x10u
#define REG_B_DM_BINARY 0x04u
#define REG_B_24H 0x02u

#define REG_C_IRQF 0x80u
#define REG_C_PF 0x40u
#define REG_C_AF 0x20u
#define REG_C_UF 0x10u
#define REG_C_FLAGS (REG_C_PF | REG_C_AF | REG_C_UF)

#define REG_D_VRT 0x80u

#define NS_PER_SEC 1000000000ll

/* Broken-down time, all fields plain binary. */
struct rtc_tm {
    int64_t year; /* full year, e.g. 2026 */
    unsigned mon, mday, hour, min, sec, wday; /* mon 1-12, wday 0 = Sunday */
};

/* rtc_calendar.c: proleptic Gregorian calendar on Unix seconds. */
void rtc_tm_from_secs(int64_t secs, struct rtc_tm *tm);
int64_t rtc_secs_from_tm(const struct rtc_tm *tm);
int64_t rtc_floor_div(int64_t a, int64_t b);

struct cmos {
    /* Binding and configuration: kept across reset, not in the blob. */
    const nimbus_host_api *host;
    void *hctx;
    uint16_t iobase;
    uint32_t gsi;
    uint8_t ram_init[CMOS_SIZE]; /* power-on RAM (memory-size bytes) */
    uint32_t irq_out;
    uint64_t armed;     /* deadline last given to timer_arm, 0 = none */

    /* How far the flags have been brought up to date (derived, not saved:
     * restore and reset restart it from "now"). */
    int seen_valid;
    int64_t seen_sec;
    int64_t seen_frac;

    /* Guest-visible state, exactly what the blob carries. */
    uint8_t index;
    uint8_t ram[CMOS_SIZE]; /* A: without UIP; C: flags only; time regs:
                               the frozen copy while the clock is stopped */
    int64_t off_sec;        /* guest clock = wall clock + off */
    int64_t off_nsec;       /* 0 .. NS_PER_SEC-1 */
};

/* cmos_rtc.c */
void cmos_power_on(struct cmos *c);
uint8_t cmos_read_reg(struct cmos *c, uint8_t idx);
void cmos_write_reg(struct cmos *c, uint8_t idx, uint8_t val);
void cmos_timer_fired(struct cmos *c);
/* Re-derive IRQ, timer and flag bookkeeping from the state (restore). */
void cmos_resync(struct cmos *c);

#endif
