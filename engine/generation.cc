#include "absl/strings/string_view.h"
#include "engine/generation.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "util/utf8.h"

namespace hr::engine {

absl::Status GenerationJob::CheckContinue() const {
  if (cancelled.load(std::memory_order_relaxed)) {
    return absl::CancelledError("generation cancelled by the client");
  }
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError("deadline passed during generation");
  }
  return absl::OkStatus();
}

std::string TextAssembler::Add(absl::string_view piece, bool* stopped) {
  *stopped = false;
  absl::StrAppend(&pending_, piece);
  for (const std::string& s : stop_) {
    size_t at = pending_.find(s);
    if (at != std::string::npos) {
      *stopped = true;
      std::string out = pending_.substr(0, at);
      pending_.clear();
      return out;
    }
  }
  // Hold back the longest suffix that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
      if (absl::EndsWith(pending_, absl::string_view(s).substr(0, k))) {
        hold = k;
        break;
      }
    }
  }
  size_t emit = util::CompleteUtf8Prefix(
      absl::string_view(pending_).substr(0, pending_.size() - hold));
  std::string out = pending_.substr(0, emit);
  pending_.erase(0, emit);
  return out;
}

std::string TextAssembler::Finish() {
  // An incomplete character at the very end cannot be completed any more; drop it
  // rather than emit invalid UTF-8.
  std::string out = pending_.substr(0, util::CompleteUtf8Prefix(pending_));
  pending_.clear();
  return out;
}

}  // namespace hr::engine
