#define _GNU_SOURCE
#include "easyremote_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <spawn.h>
#include <sys/mman.h>

int easyremote_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdin_fd,
                     int stdout_fd, int stderr_fd, const int *fds, int fd_count, pid_t *pid) {
  if (fd_count < 0 || fd_count > 16) return EINVAL;
  // Every source descriptor is first copied above the range the child's descriptors take, so
  // that placing one at 3 + i can never overwrite another still to be placed.
  int floor = 3 + fd_count;
  int sources[19];
  int wanted[19] = {stdout_fd, stderr_fd};
  for (int i = 0; i < fd_count; i++) wanted[2 + i] = fds[i];
  int count = 2 + fd_count;
  if (stdin_fd >= 0) wanted[count++] = stdin_fd;
  for (int i = 0; i < count; i++) sources[i] = -1;
  int result = 0;
  for (int i = 0; i < count; i++) {
    sources[i] = fcntl(wanted[i], F_DUPFD_CLOEXEC, floor);
    if (sources[i] < 0) { result = errno; goto done_fds; }
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  if ((result = posix_spawn_file_actions_init(&actions)) != 0) goto done_fds;
  if ((result = posix_spawnattr_init(&attributes)) != 0) goto done_actions;

  if (stdin_fd >= 0)
    result = posix_spawn_file_actions_adddup2(&actions, sources[count - 1], 0);
  else
    result = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (!result) result = posix_spawn_file_actions_adddup2(&actions, sources[0], 1);
  if (!result) result = posix_spawn_file_actions_adddup2(&actions, sources[1], 2);
  for (int i = 0; i < fd_count && !result; i++)
    result = posix_spawn_file_actions_adddup2(&actions, sources[2 + i], 3 + i);
  if (!result) result = posix_spawn_file_actions_addclosefrom_np(&actions, floor);
  if (!result && cwd) result = posix_spawn_file_actions_addchdir_np(&actions, cwd);

  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  if (!result) result = posix_spawnattr_setsigmask(&attributes, &none);
  if (!result) result = posix_spawnattr_setsigdefault(&attributes, &all);
  if (!result)
    result = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (!result) result = posix_spawn(pid, path, &actions, &attributes, argv, envp);

  posix_spawnattr_destroy(&attributes);
done_actions:
  posix_spawn_file_actions_destroy(&actions);
done_fds:
  for (int i = 0; i < count; i++)
    if (sources[i] >= 0) close(sources[i]);
  return result;
}

int easyremote_memfd(const char *name, const void *data, size_t length) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return -1;
  const char *bytes = data;
  size_t written = 0;
  while (written < length) {
    ssize_t count = write(fd, bytes + written, length - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) { int saved = errno; close(fd); errno = saved; return -1; }
    written += (size_t)count;
  }
  if (lseek(fd, 0, SEEK_SET) != 0) { int saved = errno; close(fd); errno = saved; return -1; }
  return fd;
}

int easyremote_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

#else

int easyremote_pipe(int fds[2]) { return pipe(fds); }

int easyremote_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                     int stdout_fd, int stderr_fd, const int *fds, int fd_count, pid_t *pid) {
  return ENOSYS;
}

int easyremote_memfd(const char *name, const void *data, size_t length) {
  errno = ENOSYS;
  return -1;
}

#endif
