/* Recoverable errors from user input: a function that fails returns DR_ERR after
 * recording one message of the form "<file>: <what was expected>"; the command line
 * prints it as "error: ..." and exits with code 2. */
#pragma once

#define DR_OK        0
#define DR_ERR       (-1)
#define DR_EXIT_USER 2

/* Records the message (printf-style) and returns DR_ERR, so callers can
 * `return dr_error("%s: ...", path)`. */
int dr_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last recorded message ("" if none). */
const char *dr_last_error(void);
