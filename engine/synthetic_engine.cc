#include "engine/synthetic_engine.h"

#include <string>

#include "absl/hash/hash.h"
#include "absl/time/clock.h"
#include "util/utf8.h"

namespace hr::engine {
namespace {

constexpr const char* kWords[] = {"alpha", "bravo", "charlie", "delta", "echo",
                                  "foxtrot", "golf", "hotel", "india", "juliett",
                                  "kilo", "lima", "mike", "november", "oscar", "papa"};

class SyntheticGenerator : public Generator {
 public:
  explicit SyntheticGenerator(SyntheticOptions options) : options_(options) {}

  absl::StatusOr<GenerationResult> Generate(GenerationJob& job) override {
    std::string last_user;
    size_t prompt_bytes = 0;
    for (const ChatTurn& t : job.messages) {
      prompt_bytes += t.content.size();
      if (t.role == "user") last_user = t.content;
    }
    GenerationResult result;
    result.prompt_tokens = static_cast<int>(prompt_bytes / 4 + 1);
    result.finish_reason = "max_tokens";
    const absl::Duration interval = options_.tokens_per_second > 0
                                        ? absl::Seconds(1.0 / options_.tokens_per_second)
                                        : absl::ZeroDuration();
    uint64_t h = absl::HashOf(last_user, job.seed);
    size_t echo_pos = 0;
    TextAssembler text(job.stop);
    absl::Time next = absl::Now();
    for (int i = 0; i < job.max_tokens; ++i) {
      if (absl::Status s = job.CheckContinue(); !s.ok()) return s;
      std::string piece;
      if (options_.echo) {
        if (echo_pos >= last_user.size()) {
          result.finish_reason = "eos";
          break;
        }
        // Pieces of about 4 bytes, cut on character boundaries.
        size_t end = std::min(last_user.size(), echo_pos + 4);
        while (end < last_user.size() && (last_user[end] & 0xC0) == 0x80) ++end;
        piece = last_user.substr(echo_pos, end - echo_pos);
        echo_pos = end;
      } else {
        piece = std::string(i == 0 ? "" : " ") + kWords[(h + i * 0x9E3779B97F4A7C15ULL) >> 60];
      }
      if (interval > absl::ZeroDuration()) {
        next += interval;
        absl::SleepFor(next - absl::Now());
      }
      ++result.completion_tokens;
      job.tokens_generated.fetch_add(1, std::memory_order_relaxed);
      bool stopped = false;
      std::string out = text.Add(piece, &stopped);
      if (!out.empty()) job.on_text(out);
      if (stopped) {
        result.finish_reason = "stop_string";
        return result;
      }
    }
    std::string rest = text.Finish();
    if (!rest.empty()) job.on_text(rest);
    return result;
  }

 private:
  SyntheticOptions options_;
};

}  // namespace

std::unique_ptr<Generator> NewSyntheticGenerator(const SyntheticOptions& options) {
  return std::make_unique<SyntheticGenerator>(options);
}

}  // namespace hr::engine
