/* The peripheral's wall clock (seconds since the Unix epoch) for
 * everything that depends on the time of day: learning, schedules, pins'
 * expiry.  Normally CLOCK_REALTIME.  Tests run the peripheral with
 * --virtual-clock FILE: the clock then reads FILE (a decimal number of
 * seconds since the epoch, possibly fractional), so a test moves time by
 * rewriting the file; an unreadable or malformed file reads as the last
 * good value (or the real time if there was none).
 */
#ifndef PPF_PERIPHERAL_CLOCK_H
#define PPF_PERIPHERAL_CLOCK_H

/* Uses FILE as the clock from now on (NULL: the real clock again).
 * 0, or -1 if path is too long. */
int ppf_clock_set_virtual(const char *path);
/* Now, in seconds since the epoch. */
double ppf_clock_wall(void);

#endif /* PPF_PERIPHERAL_CLOCK_H */
