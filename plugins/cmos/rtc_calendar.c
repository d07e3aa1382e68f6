/* Calendar arithmetic for the RTC (years 0..9999 and beyond, no libc tz). */
#include "cmos.h"

#define SECS_PER_DAY 86400ll

int64_t rtc_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Leap years in [1, y) of the proleptic Gregorian calendar (negative for
 * y < 1, so differences stay right across year 0). */
static int64_t leaps_before(int64_t y)
{
    return rtc_floor_div(y - 1, 4) - rtc_floor_div(y - 1, 100) +
           rtc_floor_div(y - 1, 400);
}

static const unsigned days_before_month[12] = {0,   31,  59,  90,  120, 151,
                                               181, 212, 243, 273, 304, 334};

static int64_t days_from_date(int64_t y, unsigned mon, unsigned mday)
{
    int64_t d = 365 * (y - 1970) + leaps_before(y) - leaps_before(1970);
    d += days_before_month[mon - 1] + (mon > 2 && is_leap(y)) + mday - 1;
    return d;
}

int64_t rtc_secs_from_tm(const struct rtc_tm *tm)
{
    return days_from_date(tm->year, tm->mon, tm->mday) * SECS_PER_DAY +
           tm->hour * 3600ll + tm->min * 60ll + tm->sec;
}

void rtc_tm_from_secs(int64_t secs, struct rtc_tm *tm)
{
    int64_t days = rtc_floor_div(secs, SECS_PER_DAY);
    int64_t sod = secs - days * SECS_PER_DAY;
    tm->hour = (unsigned)(sod / 3600);
    tm->min = (unsigned)(sod / 60 % 60);
    tm->sec = (unsigned)(sod % 60);
    /* 1970-01-01 was a Thursday. */
    tm->wday = (unsigned)(days + 4 - rtc_floor_div(days + 4, 7) * 7);

    /* Estimate the year from the mean Gregorian year, then correct. */
    int64_t y = 1970 + rtc_floor_div(days * 400, 146097);
    while (days_from_date(y, 1, 1) > days)
        y--;
    while (days_from_date(y + 1, 1, 1) <= days)
        y++;
    unsigned doy = (unsigned)(days - days_from_date(y, 1, 1));
    unsigned mon = 12;
    while (mon > 1 && doy < days_before_month[mon - 1] +
                               (mon > 2 && is_leap(y)))
        mon--;
    tm->year = y;
    tm->mon = mon;
    tm->mday = doy - days_before_month[mon - 1] - (mon > 2 && is_leap(y)) + 1;
}
