#ifndef HYBRID_ROUTER_GRPC_UTIL_WRITE_BATCHES_H_
#define HYBRID_ROUTER_GRPC_UTIL_WRITE_BATCHES_H_

#include <cstddef>
#include <deque>

namespace hr::grpc_util {

// The outgoing messages of one gRPC stream that carries many calls: gRPC takes
// one write at a time, so what is added while a write is in flight gathers in the
// message behind it (up to about `max_bytes`, then in a new one) and leaves in one
// write. Not thread-safe: the owner guards it with its own lock, and hands the
// message from Next() to gRPC outside or inside that lock as its API allows.
template <typename Message>
class WriteBatches {
 public:
  explicit WriteBatches(size_t max_bytes) : max_bytes_(max_bytes) {}

  // The message to add about `bytes` to: the last one not yet handed to gRPC,
  // or a new one when there is none or it is full.
  Message& Gather(size_t bytes) {
    if (queue_.size() <= (in_flight_ ? 1u : 0u) || back_bytes_ >= max_bytes_) {
      queue_.emplace_back();
      back_bytes_ = 0;
    }
    back_bytes_ += bytes;
    return queue_.back();
  }

  // The message to write now, or null when a write is in flight or nothing waits.
  // From here it is in flight; it stays in place (a deque) until WriteDone.
  const Message* Next() {
    if (in_flight_ || queue_.empty()) return nullptr;
    in_flight_ = true;
    return &queue_.front();
  }

  // The write in flight completed (well or not).
  void WriteDone() {
    queue_.pop_front();
    in_flight_ = false;
  }

  // Drops the messages waiting, when nothing more will be written. Only while
  // no write is in flight.
  void Clear() { queue_.clear(); }

  bool in_flight() const { return in_flight_; }

 private:
  const size_t max_bytes_;
  std::deque<Message> queue_;
  size_t back_bytes_ = 0;  // about, of queue_.back()
  bool in_flight_ = false;
};

}  // namespace hr::grpc_util

#endif  // HYBRID_ROUTER_GRPC_UTIL_WRITE_BATCHES_H_
