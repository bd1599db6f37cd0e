// The descriptors a child inherits: exactly those crunch-secrets was started with. A service
// manager's sockets (LISTEN_FDS), a launcher's pipe, a terminal are the caller's to hand on;
// what crunch-secrets opened itself (libcurl's wakeup socket pair, connections to Vault, the
// signalfd, pipes) is not, even where a library opened it without close-on-exec.
#pragma once

namespace cs::util {

// Records which descriptors are open now and what each refers to (device and inode). Call it
// first in main(), before anything opens a descriptor; calling it again records anew.
void record_inherited_fds();

// Marks every open descriptor close-on-exec except the recorded ones that still refer to the
// same file (a number crunch-secrets closed and reused is not the caller's any more). Called
// right before exec and before forking a child. Uses close_range(CLOSE_RANGE_CLOEXEC) between
// the kept descriptors (Linux 5.11), else /proc/self/fd, else every number below the
// descriptor limit. Returns false only when none of these worked. Without a record (a library
// user that never called `record_inherited_fds`) nothing is changed.
bool close_others_on_exec();

} // namespace cs::util
