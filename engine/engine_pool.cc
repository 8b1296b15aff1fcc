#include "engine/engine_pool.h"

#include "absl/strings/str_cat.h"

namespace hr::engine {

EnginePool::EnginePool(std::vector<std::unique_ptr<Generator>> generators, int max_queue)
    : max_queue_(max_queue), generators_(std::move(generators)) {
  for (auto& g : generators_) {
    threads_.emplace_back([this, gen = g.get()] { WorkerLoop(gen); });
  }
}

EnginePool::~EnginePool() {
  Shutdown();
  for (std::thread& t : threads_) t.join();
}

absl::Status EnginePool::Submit(std::shared_ptr<GenerationJob> job) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the model is shutting down");
  // Room for one job per worker plus max_queue_ waiting ones.
  int in_system = running_ + static_cast<int>(queue_.size());
  if (in_system >= static_cast<int>(generators_.size()) + max_queue_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the local model is busy: ", running_, " running and ", queue_.size(),
        " queued (limit ", max_queue_, "); retry later"));
  }
  queue_.push_back(std::move(job));
  return absl::OkStatus();
}

void EnginePool::Shutdown() {
  std::deque<std::shared_ptr<GenerationJob>> dropped;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
    dropped.swap(queue_);
  }
  for (auto& job : dropped) {
    job->on_done(absl::UnavailableError("the model shut down before the request ran"));
  }
}

int EnginePool::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int EnginePool::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void EnginePool::WorkerLoop(Generator* generator) {
  for (;;) {
    std::shared_ptr<GenerationJob> job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return shutting_down_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // shutting down with nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    // A job may have been cancelled or timed out while it waited.
    absl::Status waited = job->CheckContinue();
    absl::StatusOr<GenerationResult> result =
        waited.ok() ? generator->Generate(*job) : absl::StatusOr<GenerationResult>(waited);
    {
      absl::MutexLock lock(&mu_);
      --running_;
    }
    job->on_done(std::move(result));
  }
}

}  // namespace hr::engine
