// Fuzzes what an app can send hr-device: any locale, flags and messages go
// through validation, classification, the residency decision, redaction and
// restoration, as DeviceRouter does, and must neither crash nor break these:
//   - validation refuses with INVALID_ARGUMENT and a message, or accepts;
//   - detected spans lie inside their message, sorted and apart;
//   - nothing goes to the cloud that the jurisdiction keeps local, or without
//     consent where consent is required, or with a DENY or LOCAL_ONLY category;
//   - restoring a redacted message gives back the original, whatever the chunks
//     the answer arrives in;
//   - the restorer's output does not depend on how its input is chunked.
//
// Built two ways: with libFuzzer (scripts/fuzz.sh, clang) to search, and into
// the test suite (fuzz_replay) to run the committed inputs of tests/fuzz/corpus/.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "hybridrouter/v1/router.pb.h"
#include "policy/residency_policy.h"
#include "router/classifier.h"
#include "router/complexity_model.h"
#include "router/decision.h"
#include "router/redaction.h"
#include "router/request_validation.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace v1 = ::hybridrouter::v1;
using hr::router::Route;

// Reads the fuzzer's bytes as the choices of a request.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // Up to the next 0x1e byte (or the end).
  std::string Text() {
    std::string out;
    while (pos_ < size_ && data_[pos_] != 0x1e) out.push_back(static_cast<char>(data_[pos_++]));
    if (pos_ < size_) ++pos_;
    return out;
  }
  bool Done() const { return pos_ >= size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

struct Fixture {
  std::shared_ptr<const hr::policy::ResidencyPolicy> policy;
  std::unique_ptr<hr::router::ComplexityModel> model;
  std::unique_ptr<hr::router::Classifier> classifier;
};

const Fixture& GetFixture() {
  static const Fixture* f = [] {
    auto* f = new Fixture;
    auto policy = hr::policy::LoadResidencyPolicy(HR_SOURCE_DIR "/deploy/local/policy.textproto",
                                                  HR_SOURCE_DIR "/deploy/local/backends.textproto");
    auto model = hr::router::ComplexityModel::Load(HR_SOURCE_DIR "/models/complexity.pb");
    if (!policy.ok() || !model.ok()) {
      std::fprintf(stderr, "fixture: %s %s\n", policy.status().ToString().c_str(),
                   model.status().ToString().c_str());
      std::abort();
    }
    f->policy = *policy;
    f->model = *std::move(model);
    f->classifier = std::make_unique<hr::router::Classifier>(f->model.get());
    return f;
  }();
  return *f;
}

// Feeds `text` to a restorer in chunks whose sizes come from `in`.
std::string FeedInChunks(hr::router::Restorer& restorer, absl::string_view text, Input& in) {
  std::string out;
  while (!text.empty()) {
    size_t n = 1 + in.Byte() % 16;
    if (n > text.size()) n = text.size();
    out += restorer.Feed(text.substr(0, n));
    text.remove_prefix(n);
  }
  return out + restorer.Flush();
}

constexpr const char* kLocales[] = {"zh-CN", "de-DE",      "en-US", "fr-CH",
                                    "ja",    "",           "en",    "zh-Hant-TW",
                                    "x",     "de-de-1996", "ZH-cn", "sr-Latn-RS"};
constexpr const char* kRoles[] = {"user", "assistant", "system", "", "tool", "USER"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixture& f = GetFixture();
  Input in(data, size);
  v1::GenerateRequest request;
  const uint8_t flags = in.Byte();
  request.set_locale(kLocales[in.Byte() % (sizeof(kLocales) / sizeof(kLocales[0]))]);
  if (flags & 1) request.set_locale(in.Text());  // any locale text at all
  request.set_cloud_consent(flags & 2);
  request.set_hint(static_cast<v1::RouteHint>((flags >> 2) % 4));
  while (!in.Done() && request.messages_size() < 8) {
    v1::ChatMessage* m = request.add_messages();
    m->set_role(kRoles[in.Byte() % (sizeof(kRoles) / sizeof(kRoles[0]))]);
    m->set_content(in.Text());
  }

  hr::router::RequestLimits limits;
  limits.max_prompt_bytes = 4096;
  absl::StatusOr<hr::policy::Locale> locale = hr::router::ValidateGenerateRequest(request, limits);
  if (!locale.ok()) {
    FUZZ_CHECK(locale.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!locale.status().message().empty());
    return 0;
  }

  std::vector<hr::router::MessageView> views;
  std::vector<absl::string_view> contents;
  for (const v1::ChatMessage& m : request.messages()) {
    views.push_back({m.role(), m.content()});
    contents.push_back(m.content());
  }
  const hr::router::Classification c = f.classifier->Classify(views);
  FUZZ_CHECK(c.spans.size() == contents.size());
  for (size_t i = 0; i < contents.size(); ++i) {
    size_t last_end = 0;
    for (const hr::router::Span& s : c.spans[i]) {
      FUZZ_CHECK(s.start >= last_end && s.start < s.end && s.end <= contents[i].size());
      last_end = s.end;
    }
  }
  FUZZ_CHECK(c.complexity >= 0 && c.complexity <= 1);

  const hr::policy::JurisdictionRule& rule = f.policy->RuleFor(*locale);
  const hr::router::Decision d =
      hr::router::Decide(rule, c, {request.cloud_consent(), request.hint(), 0.2});
  if (d.route == Route::kCloud) {
    FUZZ_CHECK(rule.cloud_allowed);
    FUZZ_CHECK(request.cloud_consent() || !rule.consent_required);
    for (int cat = 1; cat < hr::policy::kNumCategories; ++cat) {
      if (c.counts[cat] == 0) continue;
      const v1::CategoryAction a = rule.ActionFor(static_cast<v1::SensitiveCategory>(cat));
      FUZZ_CHECK(a != v1::DENY && a != v1::LOCAL_ONLY);
    }
  }
  if (d.route == Route::kDeny) FUZZ_CHECK(!d.deny_status.ok());

  // Redact every category found, then restore each message from chunks.
  std::array<bool, hr::policy::kNumCategories> all{};
  all.fill(true);
  const hr::router::Redacted redacted = hr::router::Redact(contents, c.spans, all);
  FUZZ_CHECK(redacted.contents.size() == contents.size());
  for (size_t i = 0; i < contents.size(); ++i) {
    hr::router::Restorer restorer(redacted.mapping);
    const std::string restored = FeedInChunks(restorer, redacted.contents[i], in);
    // Text that already looked like a placeholder ("[EMAIL_1]") is restored too;
    // only text without one must come back exactly.
    if (!absl::StrContains(contents[i], "[")) FUZZ_CHECK(restored == contents[i]);
  }
  // Chunking does not change what a restorer emits, whatever the text.
  const std::string text = request.messages_size() ? request.messages(0).content() : "";
  hr::router::Restorer whole(redacted.mapping), pieces(redacted.mapping);
  std::string at_once = whole.Feed(text);
  at_once += whole.Flush();  // after Feed: the operands of + are unsequenced
  FUZZ_CHECK(at_once == FeedInChunks(pieces, text, in));
  return 0;
}
