#include "router/decision.h"

#include "gtest/gtest.h"

namespace hr::router {
namespace {

policy::JurisdictionRule CloudRule() {
  policy::JurisdictionRule r;
  r.id = "eu";
  r.cloud_allowed = true;
  r.allowed_regions = {"eu-central-1"};
  r.allowed_model_families = {"qwen"};
  r.consent_required = true;
  r.when_unavailable = v1::FALLBACK_LOCAL;
  r.actions.fill(v1::ALLOW);
  r.actions[v1::HEALTH] = v1::LOCAL_ONLY;
  r.actions[v1::IBAN] = v1::REDACT;
  r.actions[v1::US_SSN] = v1::DENY;
  return r;
}

Classification Hard() {
  Classification c;
  c.complexity = 0.9;
  return c;
}

TEST(DecideTest, HardPromptWithConsentGoesToTheCloud) {
  Decision d = Decide(CloudRule(), Hard(), {true, v1::ROUTE_HINT_UNSPECIFIED, 0.5});
  EXPECT_EQ(d.route, Route::kCloud);
  EXPECT_EQ(d.rule_ids.front(), "eu.cloud");
}

TEST(DecideTest, EasyPromptStaysLocal) {
  Classification c;
  c.complexity = 0.1;
  Decision d = Decide(CloudRule(), c, {true, v1::ROUTE_HINT_UNSPECIFIED, 0.5});
  EXPECT_EQ(d.route, Route::kLocal);
  EXPECT_EQ(d.rule_ids.front(), "complexity.local");
}

TEST(DecideTest, TheReasonSaysWhenTheHeuristicScoredForTheModel) {
  for (double complexity : {0.1, 0.9}) {
    Classification c;
    c.complexity = complexity;
    Decision by_model = Decide(CloudRule(), c, {true, v1::ROUTE_HINT_UNSPECIFIED, 0.5});
    c.complexity_by_heuristic_fallback = true;
    Decision by_heuristic = Decide(CloudRule(), c, {true, v1::ROUTE_HINT_UNSPECIFIED, 0.5});
    EXPECT_EQ(by_heuristic.route, by_model.route);
    EXPECT_EQ(by_heuristic.rule_ids, by_model.rule_ids);
    ASSERT_FALSE(by_heuristic.reasons.empty());
    EXPECT_NE(
        by_heuristic.reasons.front().find("(heuristic: the model was not trained on CJK text)"),
        std::string::npos)
        << by_heuristic.reasons.front();
    EXPECT_EQ(by_model.reasons.front().find("heuristic"), std::string::npos);
  }
}

TEST(DecideTest, MissingConsentKeepsItLocal) {
  Decision d = Decide(CloudRule(), Hard(), {false, v1::PREFER_CLOUD, 0.5});
  EXPECT_EQ(d.route, Route::kLocal);
  EXPECT_EQ(d.rule_ids.front(), "eu.consent");
}

TEST(DecideTest, LocalOnlyCategoryWinsOverHintAndComplexity) {
  Classification c = Hard();
  c.counts[v1::HEALTH] = 1;
  Decision d = Decide(CloudRule(), c, {true, v1::PREFER_CLOUD, 0.5});
  EXPECT_EQ(d.route, Route::kLocal);
  EXPECT_EQ(d.rule_ids.front(), "eu.category.HEALTH");
}

TEST(DecideTest, DenyCategoryRefusesWithPermissionDenied) {
  Classification c = Hard();
  c.counts[v1::US_SSN] = 1;
  Decision d = Decide(CloudRule(), c, {true, v1::ROUTE_HINT_UNSPECIFIED, 0.5});
  EXPECT_EQ(d.route, Route::kDeny);
  EXPECT_EQ(d.deny_status.code(), absl::StatusCode::kPermissionDenied);
}

TEST(DecideTest, RedactCategoryIsMarkedOnlyWhenPresent) {
  Classification c = Hard();
  c.counts[v1::IBAN] = 2;
  Decision d = Decide(CloudRule(), c, {true, v1::ROUTE_HINT_UNSPECIFIED, 0.5});
  EXPECT_EQ(d.route, Route::kCloud);
  EXPECT_TRUE(d.redact[v1::IBAN]);
  EXPECT_FALSE(d.redact[v1::EMAIL]);
  Decision clean = Decide(CloudRule(), Hard(), {true, v1::ROUTE_HINT_UNSPECIFIED, 0.5});
  EXPECT_FALSE(clean.redact[v1::IBAN]);
}

TEST(DecideTest, LocalOnlyJurisdictionNeverGoesToTheCloud) {
  policy::JurisdictionRule r;
  r.id = "default";
  r.actions.fill(v1::ALLOW);
  Decision d = Decide(r, Hard(), {true, v1::PREFER_CLOUD, 0.0});
  EXPECT_EQ(d.route, Route::kLocal);
  EXPECT_EQ(d.rule_ids.front(), "default.local_only");
}

TEST(DecideTest, PreferLocalHintIsHonoured) {
  Decision d = Decide(CloudRule(), Hard(), {true, v1::PREFER_LOCAL, 0.5});
  EXPECT_EQ(d.route, Route::kLocal);
}

}  // namespace
}  // namespace hr::router
