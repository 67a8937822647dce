#ifndef EASYREMOTE_SPAWN_H
#define EASYREMOTE_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/// Starts `path` with `argv` and `envp` in a session of its own (so its process group id is
/// its pid), with every signal at its default disposition and none blocked. Its stdin is
/// `stdin_fd`, or /dev/null when that is -1; its stdout and stderr are `stdout_fd` and `stderr_fd`, and `fds[i]` becomes its
/// descriptor 3 + i; every other descriptor is closed. `cwd` may be NULL.
/// Returns 0 and sets `*pid`, or returns an errno value.
int easyremote_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdin_fd,
                     int stdout_fd, int stderr_fd, const int *fds, int fd_count, pid_t *pid);

/// An anonymous in-memory file (close-on-exec) holding `length` bytes of `data`, positioned
/// at its start; -1 with errno set when it cannot be made.
int easyremote_memfd(const char *name, const void *data, size_t length);

/// A pipe whose two ends are close-on-exec (`fds[0]` reads, `fds[1]` writes): 0, or -1 with
/// errno set.
int easyremote_pipe(int fds[2]);

#endif
