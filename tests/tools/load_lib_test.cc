// hr-load's workload, sampler, arrivals, residency oracle and report.
#include "load_lib.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace hr::load {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string TempDir() {
  std::string dir = ::testing::TempDir() + "load_lib_test_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(WorkloadTest, ReadsLocalesPromptsAndARelativePromptsFile) {
  const std::string dir = TempDir();
  std::ofstream(dir + "/p.jsonl") << "{\"prompt\": \"from json\", \"other\": 1}\n\nplain line\n";
  absl::StatusOr<Workload> w = ParseWorkload(R"pb(
    locales { locale: "zh-CN" weight: 2 hint: PREFER_CLOUD }
    locales { locale: "de-DE" cloud_consent: true }
    prompts: "inline"
    prompts_file: "p.jsonl"
    options { max_tokens: 8 }
  )pb", dir + "/w.textproto");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->prompts, ElementsAre("inline", "from json", "plain line"));
  EXPECT_EQ(w->spec.locales_size(), 2);
  EXPECT_EQ(w->spec.options().max_tokens(), 8);
}

TEST(WorkloadTest, AJsonWorkloadMeansTheSame) {
  const std::string dir = TempDir();
  std::ofstream(dir + "/p.jsonl") << "{\"prompt\": \"from json\"}\n";
  absl::StatusOr<Workload> w = ParseWorkload(R"({
    "locales": [{"locale": "zh-CN", "weight": 2, "hint": "PREFER_CLOUD"},
                {"locale": "de-DE", "cloudConsent": true}],
    "prompts": ["inline"], "prompts_file": "p.jsonl", "options": {"max_tokens": 8}})",
                                             dir + "/w.json");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->prompts, ElementsAre("inline", "from json"));
  ASSERT_EQ(w->spec.locales_size(), 2);
  EXPECT_EQ(w->spec.locales(0).hint(), hybridrouter::v1::PREFER_CLOUD);
  EXPECT_TRUE(w->spec.locales(1).cloud_consent());
  EXPECT_EQ(w->spec.options().max_tokens(), 8);
  // The same text under a textproto name is not read as JSON.
  EXPECT_FALSE(ParseWorkload(R"({"prompts": ["x"]})", dir + "/w.textproto").ok());
  absl::StatusOr<Workload> bad =
      ParseWorkload("{\"prompts\": [\"x\"],\n \"locales\": 3}", dir + "/bad.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("bad.json:2:2: "));
}

TEST(WorkloadTest, ErrorsNameTheProblem) {
  auto err = [](absl::string_view text) {
    absl::StatusOr<Workload> w = ParseWorkload(text, "w.textproto");
    EXPECT_FALSE(w.ok());
    return std::string(w.status().message());
  };
  EXPECT_THAT(err(R"pb(prompts: "x")pb"), HasSubstr("locales: at least one"));
  EXPECT_THAT(err(R"pb(locales { locale: "zh-CN" })pb"), HasSubstr("no prompts"));
  EXPECT_THAT(err(R"pb(locales { locale: "not a tag!" } prompts: "x")pb"),
              HasSubstr("locales[0].locale"));
  EXPECT_THAT(err(R"pb(locales { locale: "en-US" weight: -1 } prompts: "x")pb"),
              HasSubstr("locales[0].weight"));
  EXPECT_THAT(err(R"pb(locales { locale: "en-US" } locales { locale: "en-US" hint: 5 }
                       prompts: "x")pb"),
              HasSubstr("locales[1].hint: 5 is not a RouteHint"));
  EXPECT_THAT(err("locales { locale: \"en-US\" }\nbogus: 1"), HasSubstr("w.textproto:2:"));
  EXPECT_THAT(err(R"pb(locales { locale: "en-US" } prompts_file: "/nonexistent/p")pb"),
              HasSubstr("/nonexistent/p"));
}

TEST(WorkloadTest, BadJsonlLineIsReportedWithItsLineNumber) {
  auto prompts = ParsePrompts("ok line\n{\"prompt\": 3\n", "p.jsonl");
  ASSERT_FALSE(prompts.ok());
  EXPECT_THAT(prompts.status().message(), HasSubstr("p.jsonl:2:"));
  prompts = ParsePrompts("{\"text\": \"no prompt field\"}\n", "p.jsonl");
  ASSERT_FALSE(prompts.ok());
  EXPECT_THAT(prompts.status().message(), HasSubstr("`prompt`"));
}

TEST(WorkloadTest, AnErrorDoesNotRepeatTheLinesText) {
  // The JSON parser quotes the line it could not read; prompts are not repeated
  // in errors (hrctl score writes them to stdout, hr-load to its log).
  for (absl::string_view line : {"my card 4111 1111 1111 1111", "{\"prompt\": \"my card 4111"}) {
    absl::StatusOr<std::string> r = ParsePromptRecord(line);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("not a JSON object with a prompt"));
    EXPECT_THAT(r.status().message(), Not(HasSubstr("4111"))) << r.status();
    EXPECT_THAT(r.status().message(), Not(HasSubstr("\n"))) << r.status();
  }
}

Workload TwoLocales() {
  absl::StatusOr<Workload> w = ParseWorkload(R"pb(
    locales { locale: "zh-CN" weight: 3 hint: PREFER_CLOUD }
    locales { locale: "ja-JP" weight: 1 }
    prompts: "a" prompts: "b" prompts: "c"
    system_prompt: "be brief"
  )pb", "w");
  EXPECT_TRUE(w.ok()) << w.status();
  return *w;
}

TEST(RequestSamplerTest, FollowsTheWeightsAndIsDeterministic) {
  Workload w = TwoLocales();
  RequestSampler a(w, 7), b(w, 7), c(w, 8);
  std::map<std::string, int> locales, prompts;
  bool differs = false;
  for (int i = 0; i < 8000; ++i) {
    v1::GenerateRequest ra = a.Next(), rb = b.Next(), rc = c.Next();
    EXPECT_EQ(ra.SerializeAsString(), rb.SerializeAsString());
    differs |= ra.locale() != rc.locale() || ra.messages(1).content() != rc.messages(1).content();
    ++locales[ra.locale()];
    ++prompts[ra.messages(1).content()];
    if (i == 0) {
      EXPECT_EQ(ra.request_id(), "load-1");
      ASSERT_EQ(ra.messages_size(), 2);
      EXPECT_EQ(ra.messages(0).role(), "system");
      EXPECT_EQ(ra.messages(1).role(), "user");
    }
    if (ra.locale() == "zh-CN") EXPECT_EQ(ra.hint(), v1::PREFER_CLOUD);
  }
  EXPECT_TRUE(differs) << "another seed must give another sequence";
  EXPECT_NEAR(locales["zh-CN"] / 8000.0, 0.75, 0.03);
  for (const char* p : {"a", "b", "c"}) EXPECT_NEAR(prompts[p] / 8000.0, 1 / 3.0, 0.03) << p;
}

TEST(ArrivalScheduleTest, GapsAverageOneOverTheRate) {
  ArrivalSchedule s(200, 3);
  double total = 0;
  int below_mean = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    double gap = absl::ToDoubleSeconds(s.NextGap());
    ASSERT_GE(gap, 0);
    total += gap;
    below_mean += gap < 1.0 / 200;
  }
  EXPECT_NEAR(total / n, 1.0 / 200, 0.05 / 200);
  // Exponential: P(gap < mean) = 1 - 1/e, not the 1/2 of evenly spaced arrivals.
  EXPECT_NEAR(below_mean / static_cast<double>(n), 0.632, 0.02);
}

v1::Policy PolicyFromText(const std::string& text) {
  v1::Policy p;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &p));
  return p;
}

TEST(ResidencyOracleTest, ReadsTheShippedPolicy) {
  auto oracle = ResidencyOracle::FromFile(HR_SOURCE_DIR "/deploy/local/policy.textproto");
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  EXPECT_EQ(oracle->version(), "2026-11-example-1");
  auto regions = [&](const char* locale) { return oracle->Allowed(locale)->regions; };
  EXPECT_THAT(regions("zh-CN"), ElementsAre("cn-north-1", "cn-east-1"));
  EXPECT_THAT(regions("zh_Hans_cn"), ElementsAre("cn-north-1", "cn-east-1"));
  EXPECT_THAT(regions("de-DE"), ElementsAre("eu-central-1", "eu-west-1"));
  EXPECT_THAT(regions("en-US"), ElementsAre("us-east-1"));
  EXPECT_THAT(regions("ja-JP"), IsEmpty());
  EXPECT_THAT(regions("en"), IsEmpty());
  EXPECT_EQ(oracle->Allowed("zh-CN")->jurisdiction, "cn");
  EXPECT_EQ(oracle->Allowed("en")->jurisdiction, "default");
  EXPECT_FALSE(oracle->Allowed("x!").ok());
}

TEST(ResidencyOracleTest, HonoursADefaultRuleWithCloudAndRejectsDuplicateCountries) {
  auto oracle = ResidencyOracle::FromPolicy(PolicyFromText(R"pb(
    version: "v"
    jurisdictions { id: "us" countries: "US" cloud { allowed_regions: "us-east-1" } }
    default_rule { id: "default" cloud { allowed_regions: "eu-west-1" } }
  )pb"));
  ASSERT_TRUE(oracle.ok());
  EXPECT_THAT(oracle->Allowed("ja-JP")->regions, ElementsAre("eu-west-1"));
  EXPECT_THAT(oracle->Allowed("en-us")->regions, ElementsAre("us-east-1"));

  auto dup = ResidencyOracle::FromPolicy(PolicyFromText(R"pb(
    jurisdictions { id: "a" countries: "US" }
    jurisdictions { id: "b" countries: "US" }
  )pb"));
  EXPECT_FALSE(dup.ok());
}

TEST(SummarizeTest, NearestRankPercentiles) {
  std::vector<int64_t> v;
  for (int i = 1000; i >= 1; --i) v.push_back(i);
  hybridrouter::tools::LatencySummary s = Summarize(v);
  EXPECT_EQ(s.count(), 1000);
  EXPECT_EQ(s.p50_us(), 500);
  EXPECT_EQ(s.p90_us(), 900);
  EXPECT_EQ(s.p99_us(), 990);
  EXPECT_EQ(s.p999_us(), 999);
  EXPECT_EQ(s.max_us(), 1000);
  EXPECT_DOUBLE_EQ(s.mean_us(), 500.5);

  std::vector<int64_t> one = {42};
  s = Summarize(one);
  EXPECT_EQ(s.p50_us(), 42);
  EXPECT_EQ(s.p999_us(), 42);
  std::vector<int64_t> none;
  EXPECT_EQ(Summarize(none).count(), 0);
}

Outcome Cloud(const std::string& locale, const std::string& region, int64_t us) {
  Outcome o;
  o.request_id = "r-" + locale + "-" + region;
  o.locale = locale;
  o.routed = true;
  o.cloud = true;
  o.region = region;
  o.latency_us = us;
  o.first_chunk_us = us / 2;
  o.completion_tokens = 4;
  return o;
}

TEST(ReportBuilderTest, CountsEveryRequestAndFindsViolations) {
  auto oracle = ResidencyOracle::FromFile(HR_SOURCE_DIR "/deploy/local/policy.textproto");
  ASSERT_TRUE(oracle.ok());
  ReportBuilder b(&*oracle);
  b.Add(Cloud("zh-CN", "cn-north-1", 1000));
  b.Add(Cloud("zh-CN", "cn-east-1", 3000));
  b.Add(Cloud("zh-CN", "us-east-1", 2000));  // a violation, even though it succeeded
  Outcome local;
  local.locale = "ja-JP";
  local.routed = true;
  local.latency_us = 500;
  b.Add(local);
  Outcome fallback = local;
  fallback.locale = "de-DE";
  fallback.fell_back = true;
  b.Add(fallback);
  Outcome refused;
  refused.locale = "zh-CN";
  refused.code = 14;  // UNAVAILABLE
  refused.message = "no allowed backend";
  refused.latency_us = 10;
  b.Add(refused);
  Outcome broken = Cloud("en-US", "us-east-1", 700);
  broken.code = kProtocolError;
  broken.message = "the stream ended without done";
  b.Add(broken);
  b.AddLateStart();

  hybridrouter::tools::LoadReport r = b.Build(absl::Seconds(2));
  EXPECT_EQ(r.requests(), 7);
  EXPECT_EQ(r.ok(), 5);
  EXPECT_EQ(r.failed(), 2);
  EXPECT_EQ(r.requests(), r.ok() + r.failed());
  EXPECT_DOUBLE_EQ(r.throughput_rps(), 2.5);
  EXPECT_EQ(r.late_starts(), 1);
  EXPECT_EQ(r.completion_tokens(), 12);
  EXPECT_EQ(r.latency().count(), 5);
  EXPECT_EQ(r.latency().max_us(), 3000);
  EXPECT_EQ(r.first_chunk().count(), 3);

  using Counts = std::pair<int64_t, int64_t>;  // requests, ok
  std::map<std::string, Counts> routes;
  int64_t sum = 0;
  for (const auto& route : r.routes()) {
    routes[route.route()] = {route.requests(), route.ok()};
    sum += route.requests();
  }
  EXPECT_EQ(sum, r.requests());
  EXPECT_EQ(routes["cloud/cn-north-1"], Counts(1, 1));
  EXPECT_EQ(routes["cloud/us-east-1"], Counts(2, 1));
  EXPECT_EQ(routes["local"], Counts(1, 1));
  EXPECT_EQ(routes["local-fallback"], Counts(1, 1));
  EXPECT_EQ(routes["none"], Counts(1, 0));

  std::map<std::string, int64_t> codes;
  for (const auto& s : r.statuses()) codes[s.code()] = s.count();
  EXPECT_EQ(codes["OK"], 5);
  EXPECT_EQ(codes["UNAVAILABLE"], 1);
  EXPECT_EQ(codes["PROTOCOL"], 1);

  EXPECT_EQ(r.residency_violations(), 1);
  ASSERT_EQ(r.violation_examples_size(), 1);
  EXPECT_EQ(r.violation_examples(0).locale(), "zh-CN");
  EXPECT_EQ(r.violation_examples(0).region(), "us-east-1");
  EXPECT_THAT(r.violation_examples(0).allowed_regions(), ElementsAre("cn-north-1", "cn-east-1"));

  const std::string text = FormatReport(r);
  EXPECT_THAT(text, HasSubstr("residency violations: 1"));
  EXPECT_THAT(text, HasSubstr("served in us-east-1; allowed: cn-north-1, cn-east-1"));
  EXPECT_THAT(text, HasSubstr("no allowed backend"));
}

TEST(ReportBuilderTest, CloudRouteForALocalOnlyLocaleIsAViolation) {
  auto oracle = ResidencyOracle::FromFile(HR_SOURCE_DIR "/deploy/local/policy.textproto");
  ASSERT_TRUE(oracle.ok());
  ReportBuilder b(&*oracle);
  b.Add(Cloud("ja-JP", "us-east-1", 100));
  b.Add(Cloud("en-US", "", 100));  // a cloud route that names no region
  EXPECT_EQ(b.Build(absl::Seconds(1)).residency_violations(), 2);
}

TEST(CodeNameTest, NamesCodes) {
  EXPECT_EQ(CodeName(0), "OK");
  EXPECT_EQ(CodeName(8), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(CodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(CodeName(kProtocolError), "PROTOCOL");
  EXPECT_EQ(CodeName(99), "CODE_99");
}

}  // namespace
}  // namespace hr::load
