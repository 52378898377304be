/*
 * Text from outside made safe to show on a terminal. Pod names, kubelet
 * and API server messages, a tap's image and whatever the tap's tcpdump
 * (or a process sharing its PID namespace) writes to standard error come
 * from the cluster; printed raw, an escape sequence in them could clear
 * the operator's screen, hide text or set the window title. Every piece
 * of such text goes through tm_text_safe() once, where it enters a
 * message; log.c prints messages as they are given. Pure: no I/O.
 */
#ifndef TAPMIRROR_TEXTSAFE_H
#define TAPMIRROR_TEXTSAFE_H

#include <stddef.h>

/*
 * Copies `len` bytes of `in` into `out` (`size` bytes, always
 * NUL-terminated when size > 0) so that the result is valid UTF-8 with no
 * control character:
 *   - printable ASCII and valid UTF-8 characters pass unchanged;
 *   - C0 controls and DEL become "\t", "\n", "\r" or "\xNN";
 *   - C1 controls (U+0080-U+009F) and the characters that reorder or
 *     break lines (U+061C, U+200E, U+200F, U+2028-U+202E, U+2066-U+2069)
 *     become "\uNNNN";
 *   - each byte that is not part of valid UTF-8 (a stray continuation
 *     byte, a truncated sequence, an overlong form, a surrogate, a value
 *     past U+10FFFF, a raw 8-bit C1 byte) becomes "\xNN".
 * A backslash passes unchanged. What does not fit is left out, never half
 * an escape or half a character. Returns the length written.
 */
size_t tm_text_safe(char *out, size_t size, const char *in, size_t len);

/* The same for a NUL-terminated string. */
size_t tm_text_safe_str(char *out, size_t size, const char *in);

/* Shortens a NUL-terminated string whose end cuts a UTF-8 character in
 * half (as snprintf() into a short buffer can) to the last whole one. */
void tm_text_trim_partial(char *s);

#endif
