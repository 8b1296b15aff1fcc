#include "router/decision.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hr::router {
namespace {

void Because(Decision* d, std::string rule_id, std::string reason) {
  d->rule_ids.push_back(std::move(rule_id));
  d->reasons.push_back(std::move(reason));
}

}  // namespace

Decision Decide(const policy::JurisdictionRule& rule, const Classification& c,
                const RequestFacts& facts) {
  Decision d;
  for (int cat = 1; cat < policy::kNumCategories; ++cat) {
    auto category = static_cast<v1::SensitiveCategory>(cat);
    if (c.counts[cat] > 0 && rule.ActionFor(category) == v1::DENY) {
      d.route = Route::kDeny;
      std::string name = v1::SensitiveCategory_Name(category);
      Because(&d, absl::StrCat(rule.id, ".category.", name),
              absl::StrCat("the policy of '", rule.id, "' denies requests with ", name));
      d.deny_status = absl::PermissionDeniedError(absl::StrCat(
          "policy ", rule.id, " does not allow processing requests that contain ", name));
      return d;
    }
  }
  if (!rule.cloud_allowed) {
    Because(&d, absl::StrCat(rule.id, ".local_only"),
            absl::StrCat("jurisdiction '", rule.id, "' allows no cloud processing"));
    return d;
  }
  for (int cat = 1; cat < policy::kNumCategories; ++cat) {
    auto category = static_cast<v1::SensitiveCategory>(cat);
    if (c.counts[cat] > 0 && rule.ActionFor(category) == v1::LOCAL_ONLY) {
      std::string name = v1::SensitiveCategory_Name(category);
      Because(&d, absl::StrCat(rule.id, ".category.", name),
              absl::StrCat(name, " stays on the device in '", rule.id, "'"));
      return d;
    }
  }
  if (rule.consent_required && !facts.cloud_consent) {
    Because(&d, absl::StrCat(rule.id, ".consent"),
            absl::StrCat("'", rule.id, "' requires the user's consent for cloud processing"));
    return d;
  }
  if (facts.hint == v1::PREFER_LOCAL) {
    Because(&d, "hint.prefer_local", "the app asked for the local model");
    return d;
  }
  if (facts.hint == v1::PREFER_CLOUD) {
    d.route = Route::kCloud;
    Because(&d, absl::StrCat(rule.id, ".cloud"), "the app asked for the cloud model");
  } else {
    // Says when the score is the heuristic's (ComplexityModel::Score).
    const char* scorer = c.complexity_by_heuristic_fallback
                             ? " (heuristic: the model was not trained on CJK text)"
                             : "";
    if (c.complexity >= facts.complexity_threshold) {
      d.route = Route::kCloud;
      Because(&d, absl::StrCat(rule.id, ".cloud"),
              absl::StrFormat("complexity %.3f >= threshold %.3f%s", c.complexity,
                              facts.complexity_threshold, scorer));
    } else {
      Because(&d, "complexity.local",
              absl::StrFormat("complexity %.3f < threshold %.3f%s: the local model suffices",
                              c.complexity, facts.complexity_threshold, scorer));
      return d;
    }
  }
  for (int cat = 1; cat < policy::kNumCategories; ++cat) {
    auto category = static_cast<v1::SensitiveCategory>(cat);
    if (c.counts[cat] > 0 && rule.ActionFor(category) == v1::REDACT) {
      d.redact[cat] = true;
      std::string name = v1::SensitiveCategory_Name(category);
      Because(&d, absl::StrCat(rule.id, ".category.", name),
              absl::StrCat(name, " is redacted before leaving the device"));
    }
  }
  return d;
}

}  // namespace hr::router
