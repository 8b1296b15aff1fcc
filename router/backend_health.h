#ifndef HYBRID_ROUTER_ROUTER_BACKEND_HEALTH_H_
#define HYBRID_ROUTER_ROUTER_BACKEND_HEALTH_H_

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "hybridrouter/v1/config.pb.h"
#include "router/clock.h"

namespace hr::router {

namespace v1 = ::hybridrouter::v1;

struct OutlierOptions {
  // Consecutive failures that eject a backend.
  int consecutive_failures = 3;
  // First ejection time; doubles with each further ejection, up to max_ejection.
  absl::Duration base_ejection = absl::Seconds(5);
  absl::Duration max_ejection = absl::Seconds(60);
};

// Passive health of backends (outlier ejection, as Envoy does it): a backend that
// fails `consecutive_failures` calls in a row is left out of the rotation for a
// while. Thread-safe.
class BackendHealth {
 public:
  explicit BackendHealth(OutlierOptions options, const Clock* clock = Clock::Real())
      : options_(options), clock_(clock) {}

  void RecordSuccess(const std::string& backend);
  void RecordFailure(const std::string& backend);
  bool IsEjected(const std::string& backend) const;

  // The order in which to try `candidates`: those neither ejected nor reported
  // down by `is_down` first, rotated on each call to spread load; the rest after
  // them, so that a request is not refused only because every backend was
  // recently unhealthy. Never adds a backend that is not in `candidates`.
  std::vector<const v1::Backend*> Order(
      const std::vector<const v1::Backend*>& candidates,
      const std::function<bool(const v1::Backend&)>& is_down = nullptr);

 private:
  struct State {
    int consecutive_failures = 0;
    int ejections = 0;
    absl::Time ejected_until = absl::InfinitePast();
  };

  const OutlierOptions options_;
  const Clock* const clock_;
  std::atomic<uint64_t> rotation_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, State> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_BACKEND_HEALTH_H_
