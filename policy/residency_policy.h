#ifndef HYBRID_ROUTER_POLICY_RESIDENCY_POLICY_H_
#define HYBRID_ROUTER_POLICY_RESIDENCY_POLICY_H_

#include <array>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "hybridrouter/v1/config.pb.h"
#include "policy/locale.h"

namespace hr::policy {

namespace v1 = ::hybridrouter::v1;

inline constexpr int kNumCategories = v1::SensitiveCategory_ARRAYSIZE;

// One jurisdiction's rules, compiled from the policy file. Immutable.
struct JurisdictionRule {
  std::string id;
  // False: nothing of this jurisdiction goes to the cloud.
  bool cloud_allowed = false;
  std::vector<std::string> allowed_regions;         // sorted, unique
  std::vector<std::string> allowed_model_families;  // sorted, unique
  bool consent_required = false;
  v1::UnavailableAction when_unavailable = v1::FAIL_CLOSED;
  // Action per v1::SensitiveCategory value; ALLOW where the policy is silent.
  std::array<v1::CategoryAction, kNumCategories> actions{};

  bool AllowsRegion(absl::string_view region) const;
  bool AllowsModelFamily(absl::string_view family) const;
  v1::CategoryAction ActionFor(v1::SensitiveCategory c) const { return actions[c]; }
};

// A validated policy joined with the backends list. Immutable and thread-safe;
// shared by pointer so that a reload can swap it while requests still hold the
// old one.
class ResidencyPolicy {
 public:
  // Validates `policy` and `backends` together and compiles them. On failure
  // returns InvalidArgument listing every problem, one per line. Problems that do
  // not make the policy unsafe (an allowed region no backend serves, a backend in
  // a region no jurisdiction allows) are kept as warnings().
  //
  // Use LoadResidencyPolicy() for files: it adds file and line to each problem.
  static absl::StatusOr<std::shared_ptr<const ResidencyPolicy>> Create(
      const v1::Policy& policy, const v1::Backends& backends);

  // The rule for a locale: its country's jurisdiction, or the default rule when the
  // locale has no country subtag or no jurisdiction lists the country.
  const JurisdictionRule& RuleFor(const Locale& locale) const;
  const JurisdictionRule& RuleForCountry(absl::string_view country) const;
  const JurisdictionRule& default_rule() const { return rules_.back(); }
  // The rule with this id (the default rule's too); null when there is none.
  const JurisdictionRule* RuleById(absl::string_view id) const;
  const std::vector<JurisdictionRule>& rules() const { return rules_; }

  // Backends that `rule` may use: region allowed and model family allowed, in the
  // order of the backends file. Empty for a local-only rule.
  std::vector<const v1::Backend*> BackendsFor(const JurisdictionRule& rule) const;

  const std::string& version() const { return version_; }
  const v1::Backends& backends() const { return backends_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  ResidencyPolicy() = default;

  std::string version_;
  std::vector<JurisdictionRule> rules_;  // the default rule last
  absl::flat_hash_map<std::string, size_t> country_to_rule_;
  v1::Backends backends_;
  std::vector<std::string> warnings_;
  friend class PolicyBuilder;
};

// Reads, parses (textproto, or JSON for a name ending in .json: util::ParseConfig)
// and validates both files (an empty `backends_path`: no backends, as a cloud
// backend checking claims against the policy needs). Every problem is reported as
// "FILE:LINE:COLUMN: field.path: what is wrong" ("FILE: field.path: ..." when
// the line is not known), all of them at once, in an InvalidArgument status; a missing or
// unreadable file is NotFound or PermissionDenied.
absl::StatusOr<std::shared_ptr<const ResidencyPolicy>> LoadResidencyPolicy(
    const std::string& policy_path, const std::string& backends_path);

// The same for texts already read; the paths name them in problems and, by
// their ending, choose the format.
absl::StatusOr<std::shared_ptr<const ResidencyPolicy>> ParseResidencyPolicy(
    const std::string& policy_path, const std::string& policy_text,
    const std::string& backends_path, const std::string& backends_text);

// Checks a residency claim against the region a backend runs in, as backends do
// on every request. Returns FailedPrecondition when the claim has no allowed
// regions or does not list `region`; OK otherwise.
absl::Status CheckResidencyClaim(const std::vector<std::string>& allowed_regions,
                                 absl::string_view region);

// Checks a residency claim against the backend's own copy of the policy, so that
// a device with a wrong or stale policy cannot send a request where the policy
// does not allow it: the claimed `jurisdiction` must be one of `policy`'s, its
// cloud rule must allow `region` and, when given, `model_family`; and the claim
// must name the jurisdiction `policy` puts the request's `country` in (the
// default rule when `country` is empty, as for a locale without one).
// FailedPrecondition saying which of these failed; OK otherwise.
absl::Status CheckClaimAgainstPolicy(const ResidencyPolicy& policy, absl::string_view jurisdiction,
                                     absl::string_view country, absl::string_view region,
                                     absl::string_view model_family);

// Whether a category is found as spans (and so can be redacted), as opposed to a
// topic signal (HEALTH, FINANCIAL).
bool IsIdentifierCategory(v1::SensitiveCategory category);

}  // namespace hr::policy

#endif  // HYBRID_ROUTER_POLICY_RESIDENCY_POLICY_H_
