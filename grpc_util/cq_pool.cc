#include "grpc_util/cq_pool.h"

#include <pthread.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace hr::grpc_util {
namespace {
// Which pool and queue the calling thread drives, if any.
thread_local const CqPool* tls_pool = nullptr;
thread_local int tls_queue = 0;
}  // namespace

void LiveCalls::Add(int n) {
  absl::MutexLock lock(&mu_);
  live_ += n;
}

bool LiveCalls::WaitForNone(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&none), deadline);
}

CqPool::CqPool(grpc::ServerBuilder& builder, int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) queues_.push_back(builder.AddCompletionQueue());
}

CqPool::~CqPool() { Shutdown(); }

void CqPool::Start() {
  for (int i = 0; i < size(); ++i) {
    threads_.emplace_back([this, i] {
      pthread_setname_np(pthread_self(), absl::StrCat("hr-cq-", i).substr(0, 15).c_str());
      Run(i);
    });
  }
}

void CqPool::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& q : queues_) q->Shutdown();
  for (auto& t : threads_) t.join();
  // Queues that never had a thread still must be drained before they go.
  if (threads_.empty()) {
    for (int i = 0; i < size(); ++i) Run(i);
  }
  threads_.clear();
}

grpc::CompletionQueue* CqPool::Pick() {
  if (tls_pool == this) return queues_[tls_queue].get();
  return queues_[next_.fetch_add(1, std::memory_order_relaxed) % queues_.size()].get();
}

void CqPool::Run(int i) {
  tls_pool = this;
  tls_queue = i;
  void* tag = nullptr;
  bool ok = false;
  while (queues_[i]->Next(&tag, &ok)) static_cast<CqTag*>(tag)->Proceed(ok);
  tls_pool = nullptr;
}

}  // namespace hr::grpc_util
