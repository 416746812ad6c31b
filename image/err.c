/* Error reporting for libppfimage: fills the caller's struct ppf_img_err
 * once, where the failure happens, with the class the tools turn into an
 * exit status.  A message is formatted only into the caller's buffer.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "image/image-priv.h"

void
img_err_clear(struct ppf_img_err *err)
{
    if (err) {
        err->code = PPF_IMG_OK;
        err->sys_errno = 0;
        err->msg[0] = '\0';
    }
}

static void
img_vfail(struct ppf_img_err *err, enum ppf_img_errc code, int errnum, const char *fmt,
          va_list ap)
{
    size_t n;

    if (!err || err->code != PPF_IMG_OK)
        return;                 /* the first error is the one reported */
    err->code = code;
    err->sys_errno = errnum;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    n = strlen(err->msg);
    if (errnum && n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(errnum));
}

int
img_fail(struct ppf_img_err *err, enum ppf_img_errc code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    img_vfail(err, code, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int
img_fail_sys(struct ppf_img_err *err, int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    img_vfail(err, PPF_IMG_EIO, errnum, fmt, ap);
    va_end(ap);
    return -1;
}

void
ppf_img_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}
