#ifndef HYBRID_ROUTER_TESTS_EVENTUALLY_H_
#define HYBRID_ROUTER_TESTS_EVENTUALLY_H_

#include "absl/functional/function_ref.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hr::testing {

// Asks `condition` at once and then every `every` until it holds: true then, false
// once `timeout` has passed without it. For what a test waits on in another thread
// or process (a log line, a reload, a closed connection), so that a slow machine
// waits longer and a broken one fails rather than hangs. `condition` may act too
// (send a request and say whether it was served).
inline bool Eventually(absl::FunctionRef<bool()> condition,
                       absl::Duration timeout = absl::Seconds(10),
                       absl::Duration every = absl::Milliseconds(20)) {
  const absl::Time end = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= end) return false;
    absl::SleepFor(every);
  }
}

}  // namespace hr::testing

#endif  // HYBRID_ROUTER_TESTS_EVENTUALLY_H_
