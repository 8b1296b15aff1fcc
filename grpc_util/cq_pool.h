#ifndef HYBRID_ROUTER_GRPC_UTIL_CQ_POOL_H_
#define HYBRID_ROUTER_GRPC_UTIL_CQ_POOL_H_

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace hr::grpc_util {

// What a completion-queue operation hands back as its tag: the pool's thread
// calls Proceed with the operation's outcome.
class CqTag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~CqTag() = default;
};

// A CqTag that calls a member function of its owner, so that one object can have
// a tag per kind of operation without an allocation per operation.
template <typename Owner>
class MemberTag final : public CqTag {
 public:
  MemberTag(Owner* owner, void (Owner::*fn)(bool)) : owner_(owner), fn_(fn) {}
  void Proceed(bool ok) override { (owner_->*fn_)(ok); }

 private:
  Owner* const owner_;
  void (Owner::*const fn_)(bool);
};

// How many call objects are alive, each counted while it holds a Token. A
// server's call objects hold one for their whole life, those waiting for a call
// included, so once the server's Shutdown has let go of the waiting ones, none
// left means no call is running (grpc_util::DrainServer waits for that); hr-cloud's
// reactors and the device's backend calls and streams count the same way, to
// wait for them at shutdown. Thread-safe.
class LiveCalls {
 public:
  class Token {
   public:
    explicit Token(LiveCalls* calls) : calls_(calls) { calls_->Add(1); }
    ~Token() { calls_->Add(-1); }
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;

   private:
    LiveCalls* const calls_;
  };

  // Waits until no call object is alive, at most until `deadline`; false if
  // some still are.
  bool WaitForNone(absl::Time deadline);

 private:
  void Add(int n);

  absl::Mutex mu_;
  int live_ ABSL_GUARDED_BY(mu_) = 0;
};

// Threads that each drive one completion queue of a server, for calls served on
// gRPC's completion-queue API and for client calls they make. Everything one call
// does (its server side and the client calls it starts from its thread) comes back
// on the same thread, so a request is not handed from thread to thread on the way.
//
// Lifecycle: construct with the ServerBuilder before BuildAndStart; Start() after
// it; server->Shutdown(); then Shutdown() (or the destructor) stops the threads.
class CqPool {
 public:
  CqPool(grpc::ServerBuilder& builder, int threads);
  ~CqPool();
  CqPool(const CqPool&) = delete;
  CqPool& operator=(const CqPool&) = delete;

  // Starts the threads.
  void Start();
  // Shuts the queues down (after the server's Shutdown and once no new client
  // call can start) and joins the threads once every tag has come back.
  void Shutdown();

  int size() const { return static_cast<int>(queues_.size()); }
  grpc::ServerCompletionQueue* queue(int i) const { return queues_[i].get(); }

  // The queue of the calling thread when it is one of this pool's threads;
  // otherwise one of the pool's queues in turn.
  grpc::CompletionQueue* Pick();

  // The server call objects served on this pool's queues: each holds a token.
  LiveCalls* live_calls() { return &live_calls_; }

 private:
  void Run(int i);

  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  std::atomic<unsigned> next_{0};
  bool shut_down_ = false;
  LiveCalls live_calls_;
};

}  // namespace hr::grpc_util

#endif  // HYBRID_ROUTER_GRPC_UTIL_CQ_POOL_H_
