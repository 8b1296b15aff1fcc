#ifndef HYBRID_ROUTER_ENGINE_ENGINE_POOL_H_
#define HYBRID_ROUTER_ENGINE_ENGINE_POOL_H_

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "engine/generation.h"

namespace hr::engine {

// A bounded pool of generators (for llama.cpp: contexts), each on its own worker
// thread, fed from a bounded FIFO queue. Thread-safe.
//
// Example:
//   EnginePool pool(std::move(generators), /*max_queue=*/8);
//   absl::Status s = pool.Submit(job);  // RESOURCE_EXHAUSTED when full
class EnginePool {
 public:
  EnginePool(std::vector<std::unique_ptr<Generator>> generators, int max_queue);
  // Shuts down (see Shutdown) and joins the workers.
  ~EnginePool();
  EnginePool(const EnginePool&) = delete;
  EnginePool& operator=(const EnginePool&) = delete;

  // Queues `job`. Returns RESOURCE_EXHAUSTED, without calling job->on_done, when
  // every worker is busy and max_queue jobs already wait; UNAVAILABLE when
  // shutting down. On OK, job->on_done is called exactly once later.
  absl::Status Submit(std::shared_ptr<GenerationJob> job);

  // Stops taking jobs, fails queued ones with UNAVAILABLE and waits until the
  // running ones end. Idempotent.
  void Shutdown();

  int workers() const { return static_cast<int>(generators_.size()); }
  // Jobs waiting for a worker and jobs running, at this instant.
  int queued() const;
  int running() const;

 private:
  void WorkerLoop(Generator* generator);

  const int max_queue_;
  std::vector<std::unique_ptr<Generator>> generators_;
  std::vector<std::thread> threads_;
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<GenerationJob>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hr::engine

#endif  // HYBRID_ROUTER_ENGINE_ENGINE_POOL_H_
