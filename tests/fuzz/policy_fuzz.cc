// Fuzzes the configuration operators and compliance write: any policy and
// backends text (the input, split at its first NUL byte; JSON when it starts
// with '{', else textproto) is either refused with
// INVALID_ARGUMENT and the problems, or accepted as a policy that keeps these:
//   - every jurisdiction that allows the cloud names at least one region;
//   - a jurisdiction's backends are in its allowed regions and model families;
//   - every country, listed or not, lands on exactly one rule;
//   - every action and unavailable action it acts on is one the schema names.
// Built like request_fuzz.cc: libFuzzer (scripts/fuzz.sh) and fuzz_replay.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "policy/residency_policy.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr const char* kCountries[] = {"CN", "DE", "FR", "US", "JP", "", "ZZ", "cn", "HK"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string policy_text = input.substr(0, nul);
  const std::string backends_text = nul == std::string::npos ? "" : input.substr(nul + 1);
  // Input that starts with '{' is read as the JSON form of both files.
  const bool json = !input.empty() && input[0] == '{';
  auto policy = hr::policy::ParseResidencyPolicy(
      json ? "policy.json" : "policy.textproto", policy_text,
      json ? "backends.json" : "backends.textproto", backends_text);
  if (!policy.ok()) {
    FUZZ_CHECK(policy.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!policy.status().message().empty());
    return 0;
  }
  const hr::policy::ResidencyPolicy& p = **policy;
  FUZZ_CHECK(!p.rules().empty());
  for (const hr::policy::JurisdictionRule& rule : p.rules()) {
    if (rule.cloud_allowed) {
      FUZZ_CHECK(!rule.allowed_regions.empty());
      FUZZ_CHECK(rule.when_unavailable == hr::policy::v1::FALLBACK_LOCAL ||
                 rule.when_unavailable == hr::policy::v1::FAIL_CLOSED);
    }
    for (hr::policy::v1::CategoryAction action : rule.actions) {
      FUZZ_CHECK(hr::policy::v1::CategoryAction_IsValid(action) &&
                 action != hr::policy::v1::CATEGORY_ACTION_UNSPECIFIED);
    }
    for (const auto* b : p.BackendsFor(rule)) {
      FUZZ_CHECK(rule.cloud_allowed);
      FUZZ_CHECK(rule.AllowsRegion(b->region()) && rule.AllowsModelFamily(b->model_family()));
    }
  }
  for (const char* country : kCountries) {
    const hr::policy::JurisdictionRule& rule = p.RuleForCountry(country);
    FUZZ_CHECK(&rule >= &p.rules().front() && &rule <= &p.rules().back());
  }
  return 0;
}
