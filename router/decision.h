#ifndef HYBRID_ROUTER_ROUTER_DECISION_H_
#define HYBRID_ROUTER_ROUTER_DECISION_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hybridrouter/v1/router.pb.h"
#include "policy/residency_policy.h"
#include "router/classifier.h"

namespace hr::router {

enum class Route { kLocal, kCloud, kDeny };

// The request facts that the decision needs besides its content.
struct RequestFacts {
  bool cloud_consent = false;
  v1::RouteHint hint = v1::ROUTE_HINT_UNSPECIFIED;
  double complexity_threshold = 0.5;
};

struct Decision {
  Route route = Route::kLocal;
  // Rule ids and matching reasons, most decisive first (see RouteInfo.rule_ids).
  std::vector<std::string> rule_ids;
  std::vector<std::string> reasons;
  // For kCloud: per v1::SensitiveCategory, whether its spans are redacted.
  std::array<bool, policy::kNumCategories> redact{};
  // For kDeny: PERMISSION_DENIED naming the category.
  absl::Status deny_status;
};

// Decides where a request runs under `rule`, in this order:
//   1. a category found whose action is DENY              -> kDeny
//   2. the jurisdiction has no cloud rule                 -> kLocal
//   3. a category found whose action is LOCAL_ONLY        -> kLocal
//   4. consent required and not given                     -> kLocal
//   5. hint PREFER_LOCAL / PREFER_CLOUD                   -> kLocal / kCloud
//   6. complexity >= threshold                            -> kCloud, else kLocal
// A pure function: the same inputs always give the same decision.
Decision Decide(const policy::JurisdictionRule& rule, const Classification& c,
                const RequestFacts& facts);

}  // namespace hr::router

#endif  // HYBRID_ROUTER_ROUTER_DECISION_H_
