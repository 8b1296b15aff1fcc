#ifndef HYBRID_ROUTER_ENGINE_GENERATION_H_
#define HYBRID_ROUTER_ENGINE_GENERATION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hr::engine {

struct ChatTurn {
  std::string role;     // system, user or assistant
  std::string content;  // UTF-8
};

struct GenerationResult {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::string finish_reason;  // "eos", "max_tokens" or "stop_string"
};

// One request for text. Owned by shared_ptr between the submitter and the worker
// that runs it; the submitter may set `cancelled` at any time from any thread.
struct GenerationJob {
  std::vector<ChatTurn> messages;
  int max_tokens = 128;
  float temperature = 0;  // 0: greedy
  uint32_t seed = 0;
  std::vector<std::string> stop;
  absl::Time deadline = absl::InfiniteFuture();
  std::atomic<bool> cancelled{false};
  // Tokens generated so far, counted as they come: what a job that ends early
  // (cancelled, past its deadline) had cost by then.
  std::atomic<int> tokens_generated{0};

  // Called on the worker thread with each piece of text, in order. Pieces are whole
  // UTF-8 characters and never contain a stop string. May block to apply
  // backpressure.
  std::function<void(absl::string_view)> on_text;
  // Called exactly once, on the worker thread (or on the submitter's thread when
  // the pool shuts down before the job ran): the result, or CANCELLED,
  // DEADLINE_EXCEEDED, INVALID_ARGUMENT (prompt too long), UNAVAILABLE (shutdown)
  // or INTERNAL.
  std::function<void(absl::StatusOr<GenerationResult>)> on_done;

  // Whether the job should stop now, and the status that says why.
  absl::Status CheckContinue() const;
};

// Runs jobs one at a time on the calling thread; one per pool worker (for llama.cpp
// a generator owns one context). Implementations need not be thread-safe.
class Generator {
 public:
  virtual ~Generator() = default;
  // Runs `job` to completion. Calls job.on_text for the text; checks
  // job.CheckContinue() between tokens and returns its status when not OK.
  virtual absl::StatusOr<GenerationResult> Generate(GenerationJob& job) = 0;
};

// Turns a stream of token pieces into text that is safe to emit: holds back an
// incomplete UTF-8 character and anything that could be the start of a stop
// string. Not thread-safe.
class TextAssembler {
 public:
  explicit TextAssembler(const std::vector<std::string>& stop) : stop_(stop) {}
  // Adds a piece; returns the text that can be emitted now. Sets *stopped when a
  // stop string was completed (the text up to it is returned; the rest dropped).
  std::string Add(absl::string_view piece, bool* stopped);
  // The rest, at the end of generation.
  std::string Finish();

 private:
  const std::vector<std::string>& stop_;
  std::string pending_;
};

}  // namespace hr::engine

#endif  // HYBRID_ROUTER_ENGINE_GENERATION_H_
