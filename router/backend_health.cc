#include "router/backend_health.h"

#include <algorithm>

namespace hr::router {

namespace {
class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};
}  // namespace

const Clock* Clock::Real() {
  static const RealClock* clock = new RealClock();
  return clock;
}

void BackendHealth::RecordSuccess(const std::string& backend) {
  absl::MutexLock lock(&mu_);
  State& s = states_[backend];
  s.consecutive_failures = 0;
  s.ejections = 0;
}

void BackendHealth::RecordFailure(const std::string& backend) {
  absl::MutexLock lock(&mu_);
  State& s = states_[backend];
  if (++s.consecutive_failures < options_.consecutive_failures) return;
  s.consecutive_failures = 0;
  absl::Duration d = options_.base_ejection * (1 << std::min(s.ejections, 10));
  s.ejected_until = clock_->Now() + std::min(d, options_.max_ejection);
  ++s.ejections;
}

bool BackendHealth::IsEjected(const std::string& backend) const {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(backend);
  return it != states_.end() && clock_->Now() < it->second.ejected_until;
}

std::vector<const v1::Backend*> BackendHealth::Order(
    const std::vector<const v1::Backend*>& candidates,
    const std::function<bool(const v1::Backend&)>& is_down) {
  std::vector<const v1::Backend*> good, bad;
  for (const v1::Backend* b : candidates) {
    bool down = IsEjected(b->name()) || (is_down && is_down(*b));
    (down ? bad : good).push_back(b);
  }
  uint64_t r = rotation_.fetch_add(1, std::memory_order_relaxed);
  if (!good.empty()) std::rotate(good.begin(), good.begin() + r % good.size(), good.end());
  good.insert(good.end(), bad.begin(), bad.end());
  return good;
}

}  // namespace hr::router
