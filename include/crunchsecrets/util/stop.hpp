// A stop request (SIGTERM, SIGINT, SIGHUP, SIGQUIT) while crunch-secrets holds a Vault token it
// obtained and has nothing delivered yet: the signal is caught instead of ending the process at
// once, so that the token can be revoked first (SECURITY.md, "Token revocation"). The handler
// only records the signal and makes `fd()` readable; the transfer loop polls that descriptor
// next to libcurl's and the retry wait sleeps on it, so a stop still ends a long --wait at once.
// The thread that armed the stop acts on it (`act_if_requested`): the stop action, then death by
// the same signal with its default action (exit status 128+N, as if it had not been caught).
#pragma once

#include <chrono>
#include <functional>

namespace cs::util::stop {

// Catches the stop signals that are not ignored (a nohup'd run stays deaf to SIGHUP).
void arm();

// Sets what `act_if_requested` runs before dying (core: revoke the token it obtained). It must
// not throw; it runs with the stop disarmed, so its own requests are not cut short by the fd.
void set_action(std::function<void()> action);

// The signal that asked to stop, or 0.
int requested() noexcept;

// A descriptor that becomes readable on a stop request, or -1 when not armed.
int fd() noexcept;

// Sleeps for `d`, or less when a stop is requested meanwhile.
void sleep_for(std::chrono::milliseconds d);

// When a stop was requested: disarms, runs the action, and ends the process by the signal.
void act_if_requested() noexcept;

// Restores the signals' dispositions; a stop that was requested before is acted on first, so
// none is lost. After it, the signals act at once again.
void disarm_or_act() noexcept;

// Calls `disarm_or_act` when it goes out of scope, however the scope is left. Declared right
// after the objects the action refers to, it is destroyed before them: once they are gone, no
// handler is installed and no action refers to them, so a signal that arrives while an error
// unwinds the stack or is reported acts by its default disposition and touches nothing.
class Guard {
public:
  Guard() = default;
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  ~Guard();
};

} // namespace cs::util::stop
