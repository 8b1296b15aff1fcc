// End-to-end: real hr-device and hr-cloud processes on loopback, over gRPC.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace hr::testing {
namespace {

std::vector<BackendSpec> AllRegions() {
  return {{"cn-north-1-a", "cn-north-1"}, {"cn-north-1-b", "cn-north-1"},
          {"cn-east-1-a", "cn-east-1"},   {"eu-central-1-a", "eu-central-1"},
          {"eu-west-1-a", "eu-west-1"},   {"us-east-1-a", "us-east-1", "llama", "llama"}};
}

// The jurisdictions named in a backend's received requests.
std::set<std::string> JurisdictionsReceived(const std::string& received) {
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(received, '\n', absl::SkipEmpty())) {
    size_t at = line.find("jurisdiction: \"");
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(at + 15);
    out.insert(std::string(rest.substr(0, rest.find('"'))));
  }
  return out;
}

TEST(TopologyTest, EachLocaleLandsOnlyInItsAllowedRegions) {
  Topology t(AllRegions());
  struct Case {
    std::string locale;
    bool consent;
    std::set<std::string> regions;  // empty: must stay on the device
  };
  std::vector<Case> cases = {
      {"zh-CN", false, {"cn-north-1", "cn-east-1"}},
      {"zh-Hans-CN", false, {"cn-north-1", "cn-east-1"}},
      {"de-DE", true, {"eu-central-1", "eu-west-1"}},
      {"fr-FR", true, {"eu-central-1", "eu-west-1"}},
      {"en-US", false, {"us-east-1"}},
      {"en", false, {}},
      {"ja-JP", false, {}},
      {"de-DE", false, {}},  // no consent
  };
  std::map<std::string, std::set<std::string>> seen;
  for (const Case& c : cases) {
    for (int i = 0; i < 6; ++i) {
      Answer a = Generate(t.device(), Request(c.locale, "hello world, how are you", c.consent));
      ASSERT_TRUE(a.status.ok()) << c.locale << ": " << a.status.error_message();
      if (c.regions.empty()) {
        EXPECT_EQ(a.route.target(), v1::LOCAL) << c.locale;
        EXPECT_EQ(a.route.region(), "") << c.locale;
      } else {
        EXPECT_EQ(a.route.target(), v1::CLOUD) << c.locale;
        EXPECT_TRUE(c.regions.count(a.route.region())) << c.locale << " ran in " << a.route.region();
        seen[c.locale].insert(a.route.region());
      }
      EXPECT_FALSE(a.text.empty()) << c.locale;
      EXPECT_TRUE(a.done.IsInitialized());
    }
  }
  // Load is spread over the allowed regions.
  EXPECT_EQ(seen["zh-CN"].size() + seen["zh-Hans-CN"].size() >= 3, true);
  // What each backend received, independently of what the device reported.
  for (const char* cn : {"cn-north-1-a", "cn-north-1-b", "cn-east-1-a"}) {
    auto j = JurisdictionsReceived(t.Received(cn));
    EXPECT_TRUE(j.empty() || j == std::set<std::string>{"cn"}) << cn;
  }
  for (const char* eu : {"eu-central-1-a", "eu-west-1-a"}) {
    auto j = JurisdictionsReceived(t.Received(eu));
    EXPECT_TRUE(j.empty() || j == std::set<std::string>{"eu"}) << eu;
  }
  EXPECT_EQ(JurisdictionsReceived(t.Received("us-east-1-a")), std::set<std::string>{"us"});
}

TEST(TopologyTest, AllCnBackendsDownFailsClosedAndNothingGoesElsewhere) {
  Topology t(AllRegions());
  for (const char* cn : {"cn-north-1-a", "cn-north-1-b", "cn-east-1-a"}) t.StopBackend(cn);
  for (int i = 0; i < 4; ++i) {
    Answer a = Generate(t.device(), Request("zh-CN", "你好，请帮我写一首诗"));
    EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE) << a.status.error_message();
    EXPECT_TRUE(absl::StrContains(a.status.error_message(), "FAIL_CLOSED"))
        << a.status.error_message();
    EXPECT_EQ(a.messages, 0);  // not even a RouteInfo
  }
  for (const char* other : {"eu-central-1-a", "eu-west-1-a", "us-east-1-a"}) {
    EXPECT_EQ(t.Received(other), "") << other << " received a request";
  }
}

TEST(TopologyTest, EuBackendsDownFallsBackToTheLocalModel) {
  Topology t(AllRegions());
  t.StopBackend("eu-central-1-a");
  t.StopBackend("eu-west-1-a");
  Answer a = Generate(t.device(), Request("de-DE", "Wie spät ist es?", /*consent=*/true));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.route.target(), v1::LOCAL);
  EXPECT_TRUE(a.route.fell_back());
  EXPECT_EQ(a.route.rule_ids(a.route.rule_ids_size() - 1), "eu.when_unavailable");
  EXPECT_GT(a.done.usage().completion_tokens(), 0);  // the tiny llama model answered
  for (const char* other : {"cn-north-1-a", "cn-north-1-b", "cn-east-1-a", "us-east-1-a"}) {
    EXPECT_EQ(t.Received(other), "") << other;
  }
}

// The backends file lists as cn-north-1 and eu-central-1 two processes that
// serve us-east-1 (an operator's slip). The device sends them its requests, and
// each backend, checking the claim against its own region, serves none: China
// fails closed and the EU falls back to the local model, as their rules say.
TEST(TopologyTest, BackendsListedUnderAnotherRegionServeNoneOfItsRequests) {
  BackendSpec cn{"cn-north-1-a", "us-east-1"};
  cn.listed_region = "cn-north-1";
  BackendSpec eu{"eu-central-1-a", "us-east-1"};
  eu.listed_region = "eu-central-1";
  Topology t({cn, eu});
  Answer zh = Generate(t.device(), Request("zh-CN", "你好，请帮我写一首诗"));
  EXPECT_EQ(zh.status.error_code(), grpc::StatusCode::UNAVAILABLE) << zh.status.error_message();
  EXPECT_TRUE(absl::StrContains(zh.status.error_message(), "FAIL_CLOSED"))
      << zh.status.error_message();
  EXPECT_EQ(zh.messages, 0);
  Answer de = Generate(t.device(), Request("de-DE", "Wie spät ist es?", /*consent=*/true));
  ASSERT_TRUE(de.status.ok()) << de.status.error_message();
  EXPECT_EQ(de.route.target(), v1::LOCAL);
  EXPECT_TRUE(de.route.fell_back());
  for (const char* name : {"cn-north-1-a", "eu-central-1-a"}) {
    EXPECT_EQ(t.Received(name), "") << name;
    // The device did ask, and was refused.
    EXPECT_TRUE(WaitForLog(t.dir() + "/" + name + ".log", "code=FAILED_PRECONDITION")) << name;
  }
}

TEST(TopologyTest, BackendRefusesAClaimWithoutItsRegionAndBadRequests) {
  Topology t(std::vector<BackendSpec>{BackendSpec{"eu-central-1-a", "eu-central-1"}});
  auto stub = t.BackendStub("eu-central-1-a");
  // Sends `r` straight to the backend; a refused request gets no chunk at all.
  auto send = [&stub](const v1::CloudRequest& r) {
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, r);
    v1::CloudChunk chunk;
    int chunks = 0;
    while (reader->Read(&chunk)) ++chunks;
    EXPECT_EQ(chunks, 0);
    return reader->Finish();
  };
  v1::CloudRequest r = CloudRequestTo("cn", {"cn-north-1", "cn-east-1"}, "hello");
  v1::ChatMessage* m = r.mutable_messages(0);
  grpc::Status s = send(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "eu-central-1")) << s.error_message();

  // An empty claim is refused too.
  r.mutable_claim()->clear_allowed_regions();
  EXPECT_EQ(send(r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // With its own region claimed, a prompt of nothing but spaces is still refused.
  r.mutable_claim()->set_jurisdiction("eu");
  r.mutable_claim()->add_allowed_regions("eu-central-1");
  m->set_content(" \n ");
  s = send(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(s.error_message(), "messages: the user's messages hold no text");

  // Options past the device's own limits are refused too.
  m->set_content("hello");
  for (int i = 0; i < 9; ++i) r.mutable_options()->add_stop(absl::StrCat("stop", i));
  s = send(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_EQ(s.error_message(), "options.stop: 9 strings; the limit is 8");
  EXPECT_EQ(t.Received("eu-central-1-a"), "");
}

// A backend given the policy (`hr-cloud --policy`) checks each claim against it,
// not only against the regions the claim lists.
TEST(TopologyTest, BackendWithThePolicyRefusesClaimsThePolicyDoesNotAllow) {
  const std::string dir = MakeTestDir();
  const std::string shipped = ReadFile(HR_SOURCE_DIR "/deploy/local/policy.textproto");
  const std::string policy = dir + "/policy.textproto";
  std::ofstream(policy) << shipped;
  BackendSpec us{"us-east-1-a", "us-east-1"};
  us.flags = {"--policy=" + policy, "--model_family=qwen", "--watch_interval=50ms"};
  Topology t({us});
  auto stub = t.BackendStub("us-east-1-a");
  auto send = [&stub](const std::string& jurisdiction, const std::string& country) {
    // us-east-1 is what a wrong device would claim.
    v1::CloudRequest r = CloudRequestTo(jurisdiction, {"us-east-1"}, "hello");
    r.mutable_claim()->set_country(country);
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, r);
    v1::CloudChunk chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish();
  };
  ASSERT_TRUE(send("us", "US").ok());
  struct Refused {
    std::string jurisdiction, country, why;
  };
  for (const Refused& c : std::vector<Refused>{
           {"cn", "CN", "does not allow jurisdiction 'cn' in region 'us-east-1'"},
           {"us", "CN",
            "the claim puts country CN in jurisdiction 'us', but this backend's "
            "policy (version 2026-11-example-1) puts it in 'cn'"},
           {"us", "U1", "is not an ISO 3166-1 alpha-2 code"},
           // A locale without a country is the default rule's, on the device too.
           {"us", "",
            "the claim names no country, which this backend's policy (version "
            "2026-11-example-1) puts in 'default', not in jurisdiction 'us'"},
           {"atlantis", "", "the claimed jurisdiction 'atlantis' is not in this backend's policy"},
           {"default", "", "does not allow jurisdiction 'default'"}}) {
    grpc::Status s = send(c.jurisdiction, c.country);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << c.jurisdiction;
    EXPECT_TRUE(absl::StrContains(s.error_message(), c.why)) << s.error_message();
  }
  const std::string received = t.Received("us-east-1-a");
  EXPECT_EQ(std::count(received.begin(), received.end(), '\n'), 1);  // only the one served

  // The policy is reloaded when it changes: us (and eu) now allow only llama.
  std::ofstream(dir + "/next") << absl::StrReplaceAll(
      shipped, {{"2026-11-example-1", "v2"},
                {"allowed_model_families: \"qwen\"\n    allowed_model_families: \"llama\"",
                 "allowed_model_families: \"llama\""}});
  ASSERT_EQ(std::rename((dir + "/next").c_str(), policy.c_str()), 0);
  grpc::Status s;
  Eventually(
      [&] {
        s = send("us", "US");
        return !s.ok();
      },
      absl::Seconds(5), absl::Milliseconds(25));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(),
                                "(version v2) does not allow jurisdiction "
                                "'us' on model family 'qwen'"))
      << s.error_message();
  // A broken version is refused and the one in force stays.
  std::ofstream(policy) << "version: \"broken\"\nnot_a_field: 1\n";
  kill(t.backend_process("us-east-1-a").pid(), SIGHUP);
  EXPECT_TRUE(WaitForLog(t.dir() + "/us-east-1-a.log", "reload failed; keeping policy version=v2",
                         absl::Seconds(5)));
  EXPECT_TRUE(absl::StrContains(send("us", "US").error_message(), "(version v2)"));

  // An invalid policy stops a backend from starting, naming the line.
  Process broken({HR_BIN_DIR "/hr-cloud", "--region=us-east-1", "--engine=synthetic",
                  "--listen=127.0.0.1:0", "--policy=" + policy},
                 dir + "/broken.log");
  EXPECT_EQ(broken.WaitExit(absl::Seconds(30)), 1);
  const std::string said = ReadFile(dir + "/broken.log");
  EXPECT_TRUE(absl::StrContains(said, policy + ":2:")) << said;
  EXPECT_TRUE(absl::StrContains(said, "refusing to start with an invalid policy")) << said;
}

TEST(TopologyTest, BackendsWithThePolicyStopADeviceWithAWrongOne) {
  // The device's policy was edited by mistake to allow China in us-east-1; the
  // backend has the real one. No zh-CN request may be served there.
  const std::string dir = MakeTestDir();
  const std::string shipped = ReadFile(HR_SOURCE_DIR "/deploy/local/policy.textproto");
  std::ofstream(dir + "/wrong.textproto") << absl::StrReplaceAll(
      shipped, {{"allowed_regions: \"cn-north-1\"", "allowed_regions: \"us-east-1\""},
                {"2026-11-example-1", "edited-by-mistake"}});
  BackendSpec backend{"us-east-1-a", "us-east-1"};
  backend.flags = {"--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
                   "--model_family=qwen"};
  Topology t({backend}, {"--policy=" + dir + "/wrong.textproto"});
  Answer a = Generate(t.device(), Request("zh-CN", "你好", false, v1::PREFER_CLOUD));
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE) << a.status.error_message();
  EXPECT_TRUE(absl::StrContains(a.status.error_message(),
                                "does not allow jurisdiction 'cn' in region 'us-east-1'"))
      << a.status.error_message();
  EXPECT_EQ(a.messages, 0);
  EXPECT_EQ(t.Received("us-east-1-a"), "");
  // What the policy does allow there is served.
  Answer us = Generate(t.device(), Request("en-US", "hello", false, v1::PREFER_CLOUD));
  ASSERT_TRUE(us.status.ok()) << us.status.error_message();
  EXPECT_EQ(us.route.region(), "us-east-1");
  EXPECT_TRUE(absl::StrContains(t.Received("us-east-1-a"), "country: \"US\""));
  // The backend's log says which version each device decided with, and warns,
  // once, that it is not the backend's.
  const std::string log_path = t.dir() + "/us-east-1-a.log";
  EXPECT_TRUE(WaitForLog(log_path, "jurisdiction=us device_policy=edited-by-mistake region="));
  const std::string log = ReadFile(log_path);
  EXPECT_TRUE(absl::StrContains(log, "jurisdiction=cn device_policy=edited-by-mistake code="))
      << log;
  const std::vector<absl::string_view> around =
      absl::StrSplit(log,
                     "decided under policy version=edited-by-mistake and this backend enforces "
                     "version=2026-11-example-1");
  EXPECT_EQ(around.size(), 2u) << log;
}

TEST(TopologyTest, RedactedIdNeverReachesTheBackendAndIsRestored) {
  Topology t(std::vector<BackendSpec>{BackendSpec{"cn-north-1-a", "cn-north-1"}});
  const std::string id = "11010519491231002X";
  Answer a = Generate(t.device(),
                      Request("zh-CN", "我的身份证号是" + id + "，请记住。", false,
                              v1::PREFER_CLOUD, 200));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.route.target(), v1::CLOUD);
  ASSERT_EQ(a.route.redactions_size(), 1);
  EXPECT_EQ(a.route.redactions(0).category(), v1::CN_RESIDENT_ID);
  std::string received = t.Received("cn-north-1-a");
  EXPECT_FALSE(absl::StrContains(received, id)) << received;
  EXPECT_TRUE(absl::StrContains(received, "[CN_RESIDENT_ID_1]")) << received;
  // The backend echoes what it got; the device puts the ID back.
  EXPECT_EQ(a.text, "我的身份证号是" + id + "，请记住。");
  // Neither process logged the prompt.
  EXPECT_FALSE(absl::StrContains(ReadFile(t.dir() + "/device.log"), "身份证"));
  EXPECT_FALSE(absl::StrContains(ReadFile(t.dir() + "/cn-north-1-a.log"), "身份证"));
}

// What an app chooses (its request id, a malformed locale) reaches the log lines
// of hr-device and the backend escaped: it cannot forge a line there.
TEST(TopologyTest, AnAppCannotForgeLogLines) {
  Topology t(std::vector<BackendSpec>{BackendSpec{"us-east-1-a", "us-east-1"}});
  v1::GenerateRequest served = Request("en-US", "hello", false, v1::PREFER_CLOUD);
  served.set_request_id("r1\nFORGED request_id=x code=OK");
  Answer a = Generate(t.device(), served);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.route.request_id(), served.request_id());  // the app gets its id back as sent
  v1::GenerateRequest refused = Request("en\nFORGED locale", "hello");
  refused.set_request_id("r2\nFORGED rejected");
  Answer b = Generate(t.device(), refused);
  EXPECT_EQ(b.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(WaitForLog(t.dir() + "/device.log", "rejected="));
  ASSERT_TRUE(WaitForLog(t.dir() + "/us-east-1-a.log", "served request_id="));
  for (const std::string name : {"device", "us-east-1-a"}) {
    const std::string log = ReadFile(t.dir() + "/" + name + ".log");
    EXPECT_TRUE(absl::StrContains(log, "FORGED")) << name << ": " << log;  // escaped, not gone
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      EXPECT_FALSE(absl::StartsWith(line, "FORGED")) << name << ": " << log;
    }
  }
}

TEST(TopologyTest, InvalidRequestsGetInvalidArgumentSayingWhat) {
  Topology t(std::vector<BackendSpec>{BackendSpec{"us-east-1-a", "us-east-1"}});
  struct Case {
    v1::GenerateRequest request;
    std::string expected;
  };
  std::vector<Case> cases;
  cases.push_back({Request("en-US-US!", "hi"), "locale"});
  v1::GenerateRequest empty = Request("en-US", "hi");
  empty.clear_messages();
  cases.push_back({empty, "messages: at least one message"});
  cases.push_back({Request("en-US", std::string(40 * 1024, 'a')), "the limit is 32768"});
  cases.push_back({Request("en-US", "  "), "messages: the user's messages hold no text"});
  cases.push_back({Request("en-US", std::string("abc\xc3\x28", 5)), "not valid UTF-8 at byte 3"});
  for (const Case& c : cases) {
    Answer a = Generate(t.device(), c.request);
    EXPECT_EQ(a.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.expected;
    EXPECT_TRUE(absl::StrContains(a.status.error_message(), c.expected))
        << a.status.error_message();
    grpc::ClientContext ctx;
    v1::RouteInfo info;
    EXPECT_EQ(t.device()->Explain(&ctx, c.request, &info).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(t.Received("us-east-1-a"), "");
  // Each refused Generate leaves a line saying why; the text is not in it.
  const std::string log_path = t.dir() + "/device.log";
  EXPECT_TRUE(Eventually([&] {
    return CountLines(ReadFile(log_path), "code=INVALID_ARGUMENT rejected=") >= 5;
  })) << ReadFile(log_path);
  const std::string log = ReadFile(log_path);
  EXPECT_TRUE(absl::StrContains(log, "not valid UTF-8 at byte 3"));
  EXPECT_FALSE(absl::StrContains(log, std::string(64, 'a')));
}

TEST(TopologyTest, InvalidPolicyFileStopsStartWithItsLine) {
  std::string dir = MakeTestDir();
  std::ofstream(dir + "/policy.textproto")
      << "version: \"bad\"\nregions { name: \"r1\" }\n"
      << "jurisdictions { id: \"a\" countries: \"DE\" }\n"
      << "jurisdictions { id: \"b\" countries: \"DE\" }\n"
      << "default_rule {}\n";
  std::ofstream(dir + "/backends.textproto") << "";
  Process p({HR_BIN_DIR "/hr-device", "--listen=127.0.0.1:0", "--policy=" + dir + "/policy.textproto",
             "--backends=" + dir + "/backends.textproto", "--model=" HR_TINY_MODEL,
             "--complexity_model=" HR_SOURCE_DIR "/models/complexity.pb"},
            dir + "/device.log");
  EXPECT_EQ(p.WaitExit(absl::Seconds(30)), 1);
  std::string log = ReadFile(dir + "/device.log");
  EXPECT_TRUE(absl::StrContains(log, dir + "/policy.textproto:4:")) << log;
  EXPECT_TRUE(absl::StrContains(log, "country DE is already in jurisdiction 'a'")) << log;

  Process v({HR_BIN_DIR "/hrctl", "validate", "--policy=" + dir + "/policy.textproto",
             "--backends=" + dir + "/backends.textproto"},
            dir + "/validate.log");
  EXPECT_EQ(v.WaitExit(absl::Seconds(30)), 1);
  EXPECT_TRUE(absl::StrContains(ReadFile(dir + "/validate.log"), "policy.textproto:4:"));
}

TEST(TopologyTest, ValidateSummarisesEachJurisdictionOfTheShippedFiles) {
  std::string dir = MakeTestDir();
  Process v(
      {HR_BIN_DIR "/hrctl", "validate", "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
       "--backends=" HR_SOURCE_DIR "/deploy/local/backends.textproto"},
      dir + "/validate.log");
  EXPECT_EQ(v.WaitExit(absl::Seconds(30)), 0);
  std::string out = ReadFile(dir + "/validate.log");
  EXPECT_TRUE(absl::StrContains(out, "4 jurisdictions, 6 backends")) << out;
  EXPECT_TRUE(
      absl::StrContains(out, "cloud in [cn-east-1, cn-north-1] via 3 backends, FAIL_CLOSED"))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "cloud in [us-east-1] via 1 backend, FALLBACK_LOCAL")) << out;
  EXPECT_TRUE(absl::StrContains(out, "default  local only")) << out;

  // The same policy with only the us-east-1 backend: one, not "1 backends".
  std::ofstream(dir + "/backends.textproto")
      << "backends { name: \"us-east-1-a\" address: \"127.0.0.1:50066\" region: \"us-east-1\" "
         "model_family: \"llama\" }\n";
  Process one(
      {HR_BIN_DIR "/hrctl", "validate", "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
       "--backends=" + dir + "/backends.textproto"},
      dir + "/validate_one.log");
  EXPECT_EQ(one.WaitExit(absl::Seconds(30)), 0);
  out = ReadFile(dir + "/validate_one.log");
  EXPECT_TRUE(absl::StrContains(out, "4 jurisdictions, 1 backend\n")) << out;
  EXPECT_TRUE(absl::StrContains(out, "cloud in [cn-east-1, cn-north-1] via 0 backends")) << out;
}

// An hr-device without backends on its own copy of the shipped policy, which a
// test may rewrite (policy_path()).
class DeviceOnOwnPolicy {
 public:
  explicit DeviceOnOwnPolicy(std::vector<std::string> flags)
      : dir_(MakeTestDir()), policy_(ReadFile(HR_SOURCE_DIR "/deploy/local/policy.textproto")) {
    std::ofstream(policy_path()) << policy_;
    std::ofstream(dir_ + "/backends.textproto") << "";
    flags.insert(flags.begin(), {"--policy=" + policy_path(), "--complexity_model="});
    device_ = std::make_unique<DeviceProcess>(dir_ + "/backends.textproto", std::move(flags));
  }

  const std::string& dir() const { return dir_; }
  const std::string& shipped_policy() const { return policy_; }
  std::string policy_path() const { return dir_ + "/policy.textproto"; }
  std::string log_path() const { return device_->log_path(); }
  std::string log() const { return ReadFile(log_path()); }
  Process& process() { return device_->process(); }

  // The policy version a decision names now.
  std::string PolicyVersion() {
    grpc::ClientContext ctx;
    v1::RouteInfo info;
    EXPECT_TRUE(device_->stub()->Explain(&ctx, Request("zh-CN", "hi"), &info).ok());
    return info.policy_version();
  }

 private:
  std::string dir_;
  std::string policy_;
  std::unique_ptr<DeviceProcess> device_;
};

TEST(TopologyTest, SighupWithABrokenPolicyKeepsTheOldOne) {
  DeviceOnOwnPolicy d({"--watch_interval=0"});
  std::ofstream(d.policy_path()) << "version: \"broken\"\nnot_a_field: 1\n";
  kill(d.process().pid(), SIGHUP);
  EXPECT_TRUE(WaitForLog(d.log_path(), "reload failed")) << d.log();
  EXPECT_EQ(d.PolicyVersion(), "2026-11-example-1");
}

TEST(TopologyTest, ChangedPolicyFileIsReloadedWithoutASignal) {
  DeviceOnOwnPolicy d({"--watch_interval=50ms"});
  auto version_becomes = [&d](const std::string& want) {
    return Eventually([&] { return d.PolicyVersion() == want; }, absl::Seconds(5));
  };
  ASSERT_EQ(d.PolicyVersion(), "2026-11-example-1");

  // Replaced the way config tools do it: written aside, renamed over the old one.
  std::string next =
      absl::StrReplaceAll(d.shipped_policy(), {{"2026-11-example-1", "2026-11-example-2"}});
  std::ofstream(d.dir() + "/policy.next") << next;
  ASSERT_EQ(std::rename((d.dir() + "/policy.next").c_str(), d.policy_path().c_str()), 0);
  EXPECT_TRUE(version_becomes("2026-11-example-2")) << d.log();

  // A broken edit in place is refused and the last good version stays.
  std::ofstream(d.policy_path()) << "version: \"broken\"\nnot_a_field: 1\n";
  EXPECT_TRUE(WaitForLog(d.log_path(), "reload failed", absl::Seconds(5))) << d.log();
  EXPECT_EQ(d.PolicyVersion(), "2026-11-example-2");

  // Fixed again: picked up without a signal.
  std::ofstream(d.policy_path()) << d.shipped_policy();
  EXPECT_TRUE(version_becomes("2026-11-example-1"));
}

TEST(TopologyTest, ClientCancellationStopsLocalGeneration) {
  // One local slot and no queue: while a generation runs, another local request
  // is refused with RESOURCE_EXHAUSTED; once it stops, the next is served.
  Topology t(std::vector<BackendSpec>{BackendSpec{"us-east-1-a", "us-east-1"}},
             {"--local_slots=1", "--local_max_queue=0", "--context_tokens=4096"});
  grpc::ClientContext ctx;
  auto reader = t.device()->Generate(&ctx, Request("en", "tell me a story", false,
                                                   v1::ROUTE_HINT_UNSPECIFIED, 4096));
  v1::GenerateResponse r;
  bool got_text = false;
  while (!got_text && reader->Read(&r)) got_text = r.has_chunk();
  ASSERT_TRUE(got_text);
  Answer busy = Generate(t.device(), Request("en", "hi", false, v1::ROUTE_HINT_UNSPECIFIED, 1));
  EXPECT_EQ(busy.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << busy.status.error_message();
  ctx.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // 4096 tokens take the tiny model several seconds; a stopped generation frees
  // the slot within a token.
  EXPECT_TRUE(Eventually(
      [&t] {
        return Generate(t.device(), Request("en", "hi", false, v1::ROUTE_HINT_UNSPECIFIED, 1))
            .status.ok();
      },
      absl::Seconds(5)));
  EXPECT_TRUE(WaitForLog(t.dir() + "/device.log", "code=CANCELLED"));
}

// An HTTP/2 connection to 127.0.0.1:`port` that says hello (the client preface
// and its settings) and then neither reads nor closes, as an app's idle channel
// that is not polling looks to the server. Closed when the test ends.
class IdleConnection {
 public:
  explicit IdleConnection(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    // The preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
    const std::string hello =
        std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\x04\0\0\0\0\0", 9);
    EXPECT_EQ(write(fd_, hello.data(), hello.size()), static_cast<ssize_t>(hello.size()));
  }
  ~IdleConnection() { close(fd_); }

 private:
  const int fd_;
};

// A request straight to a backend whose claim allows `region`, asking for
// `max_tokens`.
v1::CloudRequest Ask(const std::string& region, int max_tokens) {
  return CloudRequestTo("", {region}, "one two three", max_tokens);
}

TEST(TopologyTest, CloudBackendSendsStartWithTheFirstTextAndDoneWithTheLast) {
  CloudProcess cloud("eu-central-1", {"--synthetic_tokens_per_second=40"});
  grpc::ClientContext ctx;
  auto reader = cloud.stub()->Generate(&ctx, Ask("eu-central-1", 3));
  std::vector<v1::CloudChunk> chunks;
  for (v1::CloudChunk c; reader->Read(&c);) chunks.push_back(c);
  ASSERT_TRUE(reader->Finish().ok());
  // Three tokens 25 ms apart: the start rides with the first rather than alone;
  // done comes last (alone, or with text that queued up behind a write).
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_TRUE(chunks[0].has_start());
  EXPECT_EQ(chunks[0].start().region(), "eu-central-1");
  EXPECT_FALSE(chunks[0].text().empty());
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].has_start(), i == 0) << i;
    EXPECT_EQ(chunks[i].has_done(), i + 1 == chunks.size()) << i;
    if (i + 1 < chunks.size()) EXPECT_FALSE(chunks[i].text().empty()) << i;
  }
  EXPECT_EQ(chunks.back().done().usage().completion_tokens(), 3);
  EXPECT_EQ(chunks.back().done().region(), "eu-central-1");
}

TEST(TopologyTest, CloudBackendDrainsInFlightStreamsOnSigterm) {
  // The answer under way is finished, and hr-cloud exits once it is, though a
  // client connection stays open and the drain deadline is far off.
  CloudProcess cloud("us-east-1", {"--synthetic_tokens_per_second=40", "--drain_timeout=120s"});
  IdleConnection idle(cloud.port());
  grpc::ClientContext ctx;
  // 30 tokens: about 0.75 s at 40 tokens/s.
  auto reader = cloud.stub()->Generate(&ctx, Ask("us-east-1", 30));
  v1::CloudChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));  // the start, with the first token
  ASSERT_TRUE(chunk.has_start());
  int texts = chunk.text().empty() ? 0 : 1;
  bool done = false;
  kill(cloud.process().pid(), SIGTERM);
  while (reader->Read(&chunk)) {
    texts += !chunk.text().empty();
    done |= chunk.has_done();
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(done);
  EXPECT_EQ(texts, 30);
  EXPECT_EQ(cloud.process().WaitExit(absl::Seconds(10)), 0);
}

TEST(TopologyTest, CloudBackendCancelsWhatIsLeftAtTheDrainDeadline) {
  // 30 tokens at 40 tokens/s outlast a 200 ms drain: the call is cut off with a
  // status, not left hanging, and hr-cloud exits 0 saying so.
  CloudProcess cloud("us-east-1", {"--synthetic_tokens_per_second=40", "--drain_timeout=200ms"});
  grpc::ClientContext ctx;
  auto reader = cloud.stub()->Generate(&ctx, Ask("us-east-1", 30));
  v1::CloudChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  kill(cloud.process().pid(), SIGTERM);
  bool done = false;
  while (reader->Read(&chunk)) done |= chunk.has_done();
  EXPECT_FALSE(done);
  EXPECT_FALSE(reader->Finish().ok());
  EXPECT_EQ(cloud.process().WaitExit(absl::Seconds(10)), 0);
  EXPECT_TRUE(absl::StrContains(ReadFile(cloud.log_path()), "drain deadline passed"));
}

TEST(TopologyTest, DeviceServesAppsOnAUnixSocket) {
  // On a device, apps reach the router through a socket file (whose permissions
  // say who may call) rather than a loopback port.
  const std::string socket = MakeTestDir() + "/router.sock";
  Topology t(std::vector<BackendSpec>{BackendSpec{"us-east-1-a", "us-east-1"}},
             {"--listen=unix:" + socket});
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  Answer a = Generate(stub.get(), Request("en-US", "hello over a socket", true));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.route.target(), v1::CLOUD);
  EXPECT_EQ(a.route.region(), "us-east-1");
  EXPECT_FALSE(a.text.empty());
  struct stat st;
  ASSERT_EQ(stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u) << std::oct << (st.st_mode & 0777);
  kill(t.device_process().pid(), SIGTERM);
  EXPECT_EQ(t.device_process().WaitExit(absl::Seconds(15)), 0);
  EXPECT_FALSE(std::filesystem::exists(socket)) << "the socket file outlived hr-device";
}

TEST(TopologyTest, DeviceSocketFileTakesItsModeAndABadModeIsRefused) {
  const std::string dir = MakeTestDir();
  const std::vector<std::string> base = {
      HR_BIN_DIR "/hr-device", "--local_engine=synthetic",
      "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
      "--backends=" HR_SOURCE_DIR "/deploy/local/backends.textproto",
      "--complexity_model=" HR_SOURCE_DIR "/models/complexity.pb"};
  // hrctl explain on `socket` as user nobody; its exit code.
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  auto explain_as_nobody = [&dir](const std::string& socket) {
    Process p({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               HR_BIN_DIR "/hrctl", "explain", "--target=unix:" + socket, "--locale=en-US", "hi"},
              dir + "/nobody.log");
    return p.WaitExit(absl::Seconds(30));
  };
  for (const std::string mode : {"0600", "0666"}) {
    std::vector<std::string> argv = base;
    const std::string socket = dir + "/s" + mode + ".sock";
    argv.insert(argv.end(), {"--listen=unix:" + socket, "--socket_mode=" + mode,
                             "--port_file=" + dir + "/" + mode + ".port"});
    Process p(argv, dir + "/" + mode + ".log");
    WaitForPort(p, dir + "/" + mode + ".port");
    struct stat st;
    ASSERT_EQ(stat(socket.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, std::stoul(mode, nullptr, 8)) << std::oct << (st.st_mode & 0777);
    // The mode decides who may call: another user only when it lets everyone.
    if (geteuid() == 0) {
      if (mode == "0600") {
        EXPECT_EQ(explain_as_nobody(socket), 1);
        EXPECT_TRUE(absl::StrContains(ReadFile(dir + "/nobody.log"), "Permission denied"))
            << ReadFile(dir + "/nobody.log");
      } else {
        EXPECT_EQ(explain_as_nobody(socket), 0) << ReadFile(dir + "/nobody.log");
      }
    }
    EXPECT_EQ(p.Stop(), 0);
  }
  for (const std::string mode : {"rw-rw----", "0888", "", "1777", "01777"}) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), {"--listen=unix:" + dir + "/bad.sock", "--socket_mode=" + mode});
    Process p(argv, dir + "/bad.log");
    EXPECT_EQ(p.WaitExit(absl::Seconds(30)), 2) << mode;
    EXPECT_TRUE(absl::StrContains(ReadFile(dir + "/bad.log"), "--socket_mode must be octal"))
        << ReadFile(dir + "/bad.log");
    EXPECT_FALSE(std::filesystem::exists(dir + "/bad.sock")) << mode;
  }
}

TEST(TopologyTest, ASecondServerOnAnAddressInUseRefusesToStart) {
  const std::string dir = MakeTestDir();
  // A port: gRPC would share it (SO_REUSEPORT) and split the connections.
  CloudProcess cloud("us-east-1", {"--synthetic_tokens_per_second=40"});
  const std::string taken = absl::StrCat("127.0.0.1:", cloud.port());
  Process second(
      {HR_BIN_DIR "/hr-cloud", "--region=us-east-1", "--engine=synthetic", "--listen=" + taken},
      dir + "/second-cloud.log");
  EXPECT_EQ(second.WaitExit(absl::Seconds(30)), 1);
  EXPECT_TRUE(absl::StrContains(ReadFile(dir + "/second-cloud.log"), "cannot listen on " + taken))
      << ReadFile(dir + "/second-cloud.log");

  // A socket file: gRPC would replace it and leave the first server unreachable.
  const std::string socket = dir + "/router.sock";
  auto device = [&](const std::string& name) {
    return std::vector<std::string>{HR_BIN_DIR "/hr-device",
                                    "--local_engine=synthetic",
                                    "--listen=unix:" + socket,
                                    "--port_file=" + dir + "/" + name + ".port",
                                    "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
                                    "--backends=" HR_SOURCE_DIR "/deploy/local/backends.textproto",
                                    "--complexity_model=" HR_SOURCE_DIR "/models/complexity.pb"};
  };
  auto explain = [&] {
    auto stub = v1::Router::NewStub(
        grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::RouteInfo info;
    return stub->Explain(&ctx, Request("en-US", "hello"), &info);
  };
  Process first(device("first"), dir + "/first.log");
  WaitForPort(first, dir + "/first.port");
  Process other(device("other"), dir + "/other.log");
  EXPECT_EQ(other.WaitExit(absl::Seconds(30)), 1);
  EXPECT_TRUE(
      absl::StrContains(ReadFile(dir + "/other.log"), "another process is serving on that socket"))
      << ReadFile(dir + "/other.log");
  EXPECT_TRUE(explain().ok()) << "the first hr-device lost its socket";

  // A socket file left by a server that is gone is taken over.
  EXPECT_EQ(first.Stop(SIGKILL), 128 + SIGKILL);
  ASSERT_TRUE(std::filesystem::exists(socket));
  Process next(device("next"), dir + "/next.log");
  WaitForPort(next, dir + "/next.port");
  EXPECT_TRUE(explain().ok());
}

TEST(TopologyTest, DeviceDrainsOnSigtermAndTellsHealthWatchers) {
  // A local answer of 30 tokens at 40 tokens/s is under way when SIGTERM comes: it
  // is finished, a health watcher hears NOT_SERVING and is let go (status OK,
  // not cut off at the drain deadline), and the process exits 0 once they are
  // done, though a client connection stays open and the deadline is far off.
  Topology t(std::vector<BackendSpec>{BackendSpec{"us-east-1-a", "us-east-1"}},
             {"--local_engine=synthetic", "--local_synthetic_tokens_per_second=40",
              "--drain_timeout=120s"});
  IdleConnection idle(t.device_port());
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", t.device_port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext watch_ctx;
  auto watch = health->Watch(&watch_ctx, grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse status;
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  grpc::ClientContext ctx;
  auto reader = t.device()->Generate(
      &ctx, Request("en", "tell me a story", false, v1::ROUTE_HINT_UNSPECIFIED, 30));
  v1::GenerateResponse r;
  ASSERT_TRUE(reader->Read(&r));
  ASSERT_TRUE(r.has_route());
  EXPECT_EQ(r.route().target(), v1::LOCAL);
  kill(t.device_process().pid(), SIGTERM);

  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&status));
  EXPECT_TRUE(watch->Finish().ok());

  int64_t tokens = 0;
  while (reader->Read(&r)) {
    if (r.has_done()) tokens = r.done().usage().completion_tokens();
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, 30);
  // Without waiting for the idle connection: gRPC's own shutdown would wait for
  // it until it gives up on the client after its GOAWAY (20 s), and at most
  // until the drain deadline (two minutes).
  EXPECT_EQ(t.device_process().WaitExit(absl::Seconds(10)), 0);
  EXPECT_FALSE(absl::StrContains(ReadFile(t.dir() + "/device.log"), "drain deadline"));
}

// Starts `n` calls of `request` on `device`, each until its first message (routed
// to `target`) has come, then sends `device` SIGTERM and reads every call to its
// end: with a drain deadline shorter than the answers, none ends OK.
void SigtermWithCallsRunning(DeviceProcess& device, const v1::GenerateRequest& request, int n,
                             v1::ExecutionTarget target) {
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>>> readers;
  for (int i = 0; i < n; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(device.stub()->Generate(contexts.back().get(), request));
    v1::GenerateResponse r;
    ASSERT_TRUE(readers.back()->Read(&r));
    ASSERT_EQ(r.route().target(), target);
  }
  kill(device.process().pid(), SIGTERM);
  for (auto& reader : readers) {
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
    }
    EXPECT_FALSE(reader->Finish().ok());
  }
}

TEST(TopologyTest, DeviceExitsCleanlyWhenTheDrainDeadlineCutsCloudAnswers) {
  // Cloud answers that outlast --drain_timeout are cancelled, with their backend
  // calls; the device must still exit 0 (no operation started on its shut-down
  // completion queues by a backend call that ended late).
  std::string dir = MakeTestDir();
  CloudProcess cloud("us-east-1", {"--synthetic_tokens_per_second=20", "--slots=8"});
  std::ofstream(dir + "/backends.textproto")
      << "backends { name: \"us\" address: \"" << cloud.address()
      << "\" region: \"us-east-1\" model_family: \"llama\" }\n";
  DeviceProcess device(dir + "/backends.textproto",
                       {"--complexity_model=", "--drain_timeout=200ms"});
  // 200 tokens at 20 tokens/s: far longer than the drain allows.
  ASSERT_NO_FATAL_FAILURE(SigtermWithCallsRunning(
      device, Request("en-US", "tell me a story", true, v1::PREFER_CLOUD, 200), 4, v1::CLOUD));
  EXPECT_EQ(device.process().WaitExit(absl::Seconds(15)), 0) << ReadFile(device.log_path());
  EXPECT_FALSE(absl::StrContains(ReadFile(device.log_path()), "still running"));
}

TEST(TopologyTest, DeviceExitsCleanlyWhenTheDrainDeadlineCutsLocalAnswers) {
  // Local answers that outlast --drain_timeout are cancelled while the model
  // still sends text; each call then ends on its completion queue, which must
  // not be shut down before (gRPC aborts the process when an operation starts
  // on a shut-down queue). The real model, whose tokens come every millisecond
  // or so, gives such late operations; their timing varies, so several runs.
  const std::string dir = MakeTestDir();
  std::ofstream(dir + "/backends.textproto") << "";
  for (int run = 0; run < 8; ++run) {
    DeviceProcess device(dir + "/backends.textproto",
                         {"--complexity_model=", "--drain_timeout=100ms", "--local_engine=llama",
                          "--model=" HR_TINY_MODEL, "--local_slots=2", "--local_threads=1"});
    // 2,000 tokens take the tiny model seconds; "en" names no country, so it
    // stays local.
    ASSERT_NO_FATAL_FAILURE(SigtermWithCallsRunning(
        device, Request("en", "tell me a story", false, v1::ROUTE_HINT_UNSPECIFIED, 2000), 2,
        v1::LOCAL));
    ASSERT_EQ(device.process().WaitExit(absl::Seconds(15)), 0) << "run " << run << ":\n"
                                                               << ReadFile(device.log_path());
  }
}

// Stops `pid` (SIGSTOP) and waits until every one of its threads has: kill()
// returns before they all have. A stopped process keeps its connections open
// (the kernel still takes their bytes) but answers nothing, as a hung one would.
bool Freeze(pid_t pid) {
  if (kill(pid, SIGSTOP) != 0) return false;
  auto all_stopped = [pid] {
    for (const auto& task :
         std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"))) {
      std::string stat = ReadFile(task.path().string() + "/stat");
      size_t paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'T') {
        return false;
      }
    }
    return true;
  };
  return Eventually(all_stopped, absl::Seconds(5), absl::Milliseconds(10));
}

// The only us-east-1 backend is frozen (SIGSTOP): its socket still accepts, but
// nothing answers. After --first_text_timeout the attempt is given up and the
// US rule's fallback (local) answers, long before the request's deadline.
void ExpectSilentBackendGivenUp(bool shared_stream) {
  BackendSpec spec{"us-east-1-a", "us-east-1"};
  spec.shared_stream = shared_stream;
  Topology t(std::vector<BackendSpec>{spec},
             {"--local_engine=synthetic", "--local_synthetic_tokens_per_second=0",
              "--first_text_timeout=300ms"});
  // Connected first, so the frozen backend looks up to the device's channel.
  Answer warm = Generate(t.device(), Request("en-US", "hi", true, v1::PREFER_CLOUD, 4));
  ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();
  ASSERT_EQ(warm.route.target(), v1::CLOUD);

  const pid_t backend = t.backend_process("us-east-1-a").pid();
  ASSERT_TRUE(Freeze(backend));
  Answer a = Generate(t.device(), Request("en-US", "hi again", true, v1::PREFER_CLOUD, 4),
                      absl::Seconds(20));
  kill(backend, SIGCONT);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.route.target(), v1::LOCAL);
  EXPECT_TRUE(a.route.fell_back());
  bool said_why = false;
  for (const std::string& reason : a.route.reasons()) {
    said_why |= absl::StrContains(reason, "us-east-1-a (us-east-1): UNAVAILABLE backend sent no "
                                          "text within 300ms");
  }
  EXPECT_TRUE(said_why) << a.route.DebugString();
  EXPECT_TRUE(absl::StrContains(ReadFile(t.dir() + "/device.log"),
                                "backend=us-east-1-a region=us-east-1 attempt failed code=UNAVAILABLE"));
}

TEST(TopologyTest, SilentBackendIsGivenUpAfterTheFirstTextTimeout) {
  ExpectSilentBackendGivenUp(/*shared_stream=*/false);
}

TEST(TopologyTest, SilentBackendOnASharedStreamIsGivenUpAfterTheFirstTextTimeout) {
  ExpectSilentBackendGivenUp(/*shared_stream=*/true);
}

// A backend that hangs in the middle of an answer, its connection still open:
// the keepalive ping goes unanswered, the connection is closed, and the app's
// call ends UNAVAILABLE seconds later instead of at its deadline.
void ExpectBackendFrozenMidAnswerFound(bool shared_stream) {
  BackendSpec spec{"us-east-1-a", "us-east-1"};
  spec.shared_stream = shared_stream;
  spec.flags = {"--synthetic_tokens_per_second=10"};  // 40 tokens: 4 s
  Topology t(std::vector<BackendSpec>{spec},
             {"--backend_keepalive_time=5s", "--backend_keepalive_timeout=1s"});
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  std::string words;
  for (int i = 0; i < 40; ++i) absl::StrAppend(&words, "word", i, " ");
  auto reader = t.device()->Generate(&ctx, Request("en-US", words, true, v1::PREFER_CLOUD, 40));
  v1::GenerateResponse first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_EQ(first.route().target(), v1::CLOUD);
  ASSERT_TRUE(Freeze(t.backend_process("us-east-1-a").pid()));
  const absl::Time frozen = absl::Now();
  v1::GenerateResponse more;
  while (reader->Read(&more)) {
  }
  const grpc::Status status = reader->Finish();
  const absl::Duration waited = absl::Now() - frozen;
  kill(t.backend_process("us-east-1-a").pid(), SIGCONT);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "failed mid-answer"))
      << status.error_message();
  // A ping after at most 5 s of quiet, 1 s for its answer; the deadline was 60 s.
  EXPECT_LT(waited, absl::Seconds(30));
}

TEST(TopologyTest, BackendFrozenMidAnswerIsFoundByKeepalive) {
  ExpectBackendFrozenMidAnswerFound(/*shared_stream=*/false);
}

TEST(TopologyTest, BackendFrozenMidAnswerOnASharedStreamIsFoundByKeepalive) {
  ExpectBackendFrozenMidAnswerFound(/*shared_stream=*/true);
}

// A device that vanishes in the middle of an answer, its connection left open
// (frozen: the kernel still takes the bytes, nothing answers), does not keep the
// backend's slot busy until the answer would have ended: hr-cloud's keepalive
// ping goes unanswered, it closes the connection and cancels the generation, and
// the request waiting for that slot is served.
void ExpectFrozenDeviceFreesItsSlot(bool shared_stream) {
  BackendSpec spec{"us-east-1-a", "us-east-1"};
  spec.shared_stream = shared_stream;
  // 1000 tokens at 10 a second: 100 s; one slot, one place in the queue.
  spec.flags = {"--synthetic_echo=false",
                "--synthetic_tokens_per_second=10",
                "--slots=1",
                "--max_queue=1",
                "--client_keepalive_time=2s",
                "--client_keepalive_timeout=1s"};
  Topology t(std::vector<BackendSpec>{spec});
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  auto reader = t.device()->Generate(
      &ctx, Request("en-US", "tell me a long story", true, v1::PREFER_CLOUD, 1000));
  v1::GenerateResponse first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_EQ(first.route().target(), v1::CLOUD);
  const pid_t device = t.device_process().pid();
  ASSERT_TRUE(Freeze(device));

  // Straight to the backend, whose only slot the frozen device's answer holds.
  const v1::CloudRequest r = CloudRequestTo("us", {"us-east-1"}, "hello", 2);
  auto stub = t.BackendStub("us-east-1-a");
  grpc::ClientContext waiting;
  waiting.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto answer = stub->Generate(&waiting, r);
  v1::CloudChunk chunk;
  std::string text;
  while (answer->Read(&chunk)) text += chunk.text();
  const grpc::Status status = answer->Finish();
  kill(device, SIGCONT);
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_FALSE(text.empty());
  // The backend's log says what the cancelled answer had cost: the tokens made
  // in the seconds before the ping went unanswered.
  const std::string log = t.backend_process("us-east-1-a").log_path();
  const std::string cancelled_line = "code=CANCELLED completion_tokens=";
  ASSERT_TRUE(WaitForLog(log, cancelled_line)) << ReadFile(log);
  const std::string said = ReadFile(log);
  EXPECT_GT(std::stoi(said.substr(said.find(cancelled_line) + cancelled_line.size())), 0) << said;
}

TEST(TopologyTest, DeviceFrozenMidAnswerFreesTheBackendSlot) {
  ExpectFrozenDeviceFreesItsSlot(/*shared_stream=*/false);
}

TEST(TopologyTest, DeviceFrozenMidAnswerOnASharedStreamFreesTheBackendSlot) {
  ExpectFrozenDeviceFreesItsSlot(/*shared_stream=*/true);
}

// The client ports of the established loopback TCP connections to local port
// `port`, seen from the server's side: /proc/net/tcp, and /proc/net/tcp6, where
// gRPC's dual-stack sockets list their IPv4 connections.
std::set<int> EstablishedPeersOf(int port) {
  std::set<int> peers;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream table(ReadFile(path));
    std::string line;
    std::getline(table, line);  // the header
    while (std::getline(table, line)) {
      std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 4 || fields[3] != "01") continue;  // 01: ESTABLISHED
      auto port_of = [](const std::string& address) {
        return static_cast<int>(std::stoul(address.substr(address.find(':') + 1), nullptr, 16));
      };
      if (port_of(fields[1]) == port) peers.insert(port_of(fields[2]));
    }
  }
  return peers;
}

// hr-cloud --max_connection_age sends each device to a new connection every
// second here; the device's requests go on through each move, none failing or
// falling back, and the backend sees one connection after another.
void ExpectConnectionsRecycledWithoutALostRequest(bool shared_stream) {
  BackendSpec spec{"us-east-1-a", "us-east-1"};
  spec.shared_stream = shared_stream;
  spec.flags = {"--max_connection_age=1s", "--max_connection_age_grace=3s"};
  Topology t(std::vector<BackendSpec>{spec}, {"--stream_max_age=200ms"});
  const int port = t.backend_port("us-east-1-a");
  std::set<int> connections;
  int requests = 0;
  for (const absl::Time end = absl::Now() + absl::Seconds(5); absl::Now() < end; ++requests) {
    Answer a = Generate(
        t.device(), Request("en-US", absl::StrCat("hello ", requests), true, v1::PREFER_CLOUD, 4),
        absl::Seconds(10));
    ASSERT_TRUE(a.status.ok()) << requests << ": " << a.status.error_message();
    ASSERT_EQ(a.route.target(), v1::CLOUD) << a.route.DebugString();
    ASSERT_FALSE(a.route.fell_back()) << a.route.DebugString();
    std::set<int> now = EstablishedPeersOf(port);
    connections.insert(now.begin(), now.end());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_GT(requests, 20);
  // Five seconds at one second's age each (give or take 10%).
  EXPECT_GE(connections.size(), 3u);
}

TEST(TopologyTest, BackendMovesDevicesToNewConnectionsWithoutLosingARequest) {
  ExpectConnectionsRecycledWithoutALostRequest(/*shared_stream=*/false);
}

TEST(TopologyTest, BackendMovesASharedStreamToNewConnectionsWithoutLosingARequest) {
  ExpectConnectionsRecycledWithoutALostRequest(/*shared_stream=*/true);
}

// A device that vanished while idle answers no ping and has no call running, so
// the keepalive (off here) would not find it, but its connection still ends at
// --max_connection_age plus the grace.
TEST(TopologyTest, BackendClosesTheConnectionOfAnIdleDeviceThatVanished) {
  BackendSpec spec{"us-east-1-a", "us-east-1"};
  spec.flags = {"--max_connection_age=1s", "--max_connection_age_grace=1s",
                "--client_keepalive_time=0"};
  Topology t(std::vector<BackendSpec>{spec});
  Answer warm = Generate(t.device(), Request("en-US", "hi", true, v1::PREFER_CLOUD, 4));
  ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();
  const int port = t.backend_port("us-east-1-a");
  const pid_t device = t.device_process().pid();
  ASSERT_TRUE(Freeze(device));
  // The device's own connection: its gRPC client had it open when frozen.
  const std::set<int> frozen = EstablishedPeersOf(port);
  const bool closed = Eventually(
      [&] {
        std::set<int> now = EstablishedPeersOf(port);
        return std::none_of(frozen.begin(), frozen.end(),
                            [&now](int peer) { return now.count(peer) > 0; });
      },
      absl::Seconds(20), absl::Milliseconds(100));
  kill(device, SIGCONT);
  EXPECT_FALSE(frozen.empty());
  EXPECT_TRUE(closed);
}

// Scaling a region out: a replica added behind the backend's name after the
// device connected gets its share of the device's requests. gRPC looks the name
// up again when a connection closes, and hr-cloud's --max_connection_age closes
// each one in time. gRPC looks a name up at most every 30 s, so this test takes
// that long.
TEST(TopologyTest, DevicesReachAReplicaAddedBehindTheBackendsName) {
  TestDnsServer dns;
  dns.SetAddresses({"127.0.0.1"});
  const std::string dir = MakeTestDir();
  auto start_replica = [&](const std::string& name, const std::string& listen) {
    return std::make_unique<CloudProcess>(
        "us-east-1",
        std::vector<std::string>{"--synthetic_tokens_per_second=0",
                                 "--record_requests=" + dir + "/" + name + ".received",
                                 "--max_connection_age=1s", "--max_connection_age_grace=3s"},
        listen);
  };
  std::unique_ptr<CloudProcess> first = start_replica("first", "127.0.0.1:0");
  const int port = first->port();
  // The second replica's address, not yet behind the name.
  std::unique_ptr<CloudProcess> second = start_replica("second", absl::StrCat("127.0.0.2:", port));
  std::ofstream(dir + "/backends.textproto")
      << "backends { name: \"us-east-1-a\" address: \"dns://127.0.0.1:" << dns.port()
      << "/replicas.test:" << port << "\" region: \"us-east-1\" model_family: \"qwen\" }\n";
  DeviceProcess device(dir + "/backends.textproto");
  v1::Router::Stub* stub = device.stub();
  auto served_by = [&](const std::string& name) {
    const std::string received = ReadFile(dir + "/" + name + ".received");
    return std::count(received.begin(), received.end(), '\n');
  };
  int requests = 0;
  auto ask = [&] {
    Answer a = Generate(
        stub, Request("en-US", absl::StrCat("hello ", requests++), true, v1::PREFER_CLOUD, 4),
        absl::Seconds(10));
    EXPECT_TRUE(a.status.ok()) << a.status.error_message();
    EXPECT_EQ(a.route.target(), v1::CLOUD) << a.route.DebugString();
    EXPECT_FALSE(a.route.fell_back()) << a.route.DebugString();
  };
  for (int i = 0; i < 5; ++i) ask();
  EXPECT_EQ(served_by("first"), 5);
  EXPECT_EQ(served_by("second"), 0);

  dns.SetAddresses({"127.0.0.1", "127.0.0.2"});
  Eventually(
      [&] {
        ask();
        return served_by("second") >= 5 || ::testing::Test::HasFailure();
      },
      absl::Seconds(60), absl::Milliseconds(100));
  EXPECT_GE(served_by("second"), 5) << "the device never reached the new replica";
  EXPECT_GT(dns.a_queries(), 1);
  EXPECT_EQ(served_by("first") + served_by("second"), requests);
}

TEST(BinariesTest, ServersNameEveryBadFlagAndDoNotStart) {
  const std::string dir = MakeTestDir();
  struct Case {
    std::vector<std::string> argv;
    std::vector<std::string> said;
  };
  const std::vector<Case> cases = {
      {{HR_BIN_DIR "/hr-device", "--listen=127.0.0.1:0", "--local_engine=synthetic",
        "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto",
        "--backends=" HR_SOURCE_DIR "/deploy/local/backends.textproto", "--default_deadline=0s",
        "--default_max_tokens=5000", "--max_prompt_bytes=0", "--complexity_threshold=1.5",
        "--drain_timeout=-1s", "--watch_interval=-2s", "--local_threads=0", "--local_slots=100000",
        "--io_threads=5000", "--backend_keepalive_time=1s", "--backend_keepalive_timeout=0s"},
       {"--default_deadline must be positive", "--default_max_tokens must be 1 to 4096",
        "--max_prompt_bytes must be at least 1", "--complexity_threshold must be in [0, 1]",
        "--drain_timeout must not be negative", "--watch_interval must not be negative",
        "--local_threads must be 1 to 1024, not 0", "--local_slots must be 1 to 1024, not 100000",
        "--io_threads must be 1 to 1024, not 5000",
        "--backend_keepalive_time must be 0 (off) or at least 5s",
        "--backend_keepalive_timeout must be positive"}},
      {{HR_BIN_DIR "/hr-device", "--listen=127.0.0.1:0", "--log_level=loud"},
       {"--log_level must be trace, debug, info, warn, error or off, not 'loud'"}},
      {{HR_BIN_DIR "/hr-cloud", "--listen=127.0.0.1:0", "--region=us-east-1", "--log_level=loud"},
       {"--log_level must be trace, debug, info, warn, error or off, not 'loud'"}},
      {{HR_BIN_DIR "/hr-cloud", "--listen=127.0.0.1:0", "--engine=synthetic",
        "--synthetic_tokens_per_second=-3", "--threads=0", "--slots=100000", "--drain_timeout=-1s",
        "--watch_interval=-1s", "--client_keepalive_time=-1s", "--client_keepalive_timeout=0s",
        "--max_connection_age=-1s", "--max_connection_age_grace=-1s"},
       {"--region is required", "--synthetic_tokens_per_second must not be negative",
        "--threads must be 1 to 1024, not 0", "--slots must be 1 to 1024, not 100000",
        "--drain_timeout must not be negative", "--watch_interval must not be negative",
        "--client_keepalive_time must not be negative",
        "--client_keepalive_timeout must be positive", "--max_connection_age must not be negative",
        "--max_connection_age_grace must not be negative"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string log = absl::StrCat(dir, "/", i, ".log");
    Process p(cases[i].argv, log);
    EXPECT_EQ(p.WaitExit(absl::Seconds(30)), 2) << ReadFile(log);
    const std::string said = ReadFile(log);
    for (const std::string& problem : cases[i].said) {
      EXPECT_TRUE(absl::StrContains(said, problem)) << problem << " not in:\n" << said;
    }
    EXPECT_FALSE(absl::StrContains(said, "serving")) << said;
  }
}

TEST(BinariesTest, HelpListsEachProgramsOwnFlagsAndExitsZero) {
  // Abseil lists by default only flags from a file named like the program, which
  // left --help of most binaries without a single flag; and it exits 1 after
  // --help and knows no -h, so `hr-device --help && ...` failed.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hr-device", "--first_text_timeout"},
      {"hr-cloud", "--record_requests"},
      {"hr-load", "--channels"},
      {"hr-train", "--seed"},
      {"hrctl", "--request_id"},
      {"hr-make-tiny-model", "--vocab"}};
  std::string dir = MakeTestDir();
  for (const auto& c : cases) {
    // Plain references, not a structured binding: C++17 lambdas cannot capture one
    // (GCC allows it; clang refuses).
    const std::string& binary = c.first;
    const std::string& flag = c.second;
    const std::string path = std::string(HR_BIN_DIR) + "/" + binary;
    auto run = [&](const std::string& arg, int want_exit) {
      std::string log = absl::StrCat(dir, "/", binary, arg, ".out");
      Process p({path, arg}, log);
      EXPECT_EQ(p.WaitExit(absl::Seconds(30)), want_exit) << binary << " " << arg;
      return ReadFile(log);
    };
    std::string help = run("--help", 0);
    EXPECT_TRUE(absl::StrContains(help, flag)) << binary << " --help:\n" << help;
    EXPECT_FALSE(absl::StrContains(help, "--flagfile (")) << binary << ": Abseil's own flags";
    // The program's name before the usage message, once.
    EXPECT_TRUE(absl::StartsWith(help, binary + ": ")) << help;
    EXPECT_FALSE(absl::StartsWith(help, binary + ": " + binary)) << help;
    EXPECT_EQ(run("-h", 0), help) << binary;
    std::string full = run("--helpfull", 0);
    EXPECT_TRUE(absl::StrContains(full, flag)) << binary << " --helpfull:\n" << full;
    EXPECT_TRUE(absl::StrContains(full, "--flagfile (")) << binary << " --helpfull:\n" << full;
    // --help=TEXT: only the flags that mention it.
    std::string matching = run("--help=" + flag.substr(2), 0);
    EXPECT_TRUE(absl::StrContains(matching, flag)) << matching;
    EXPECT_LT(matching.size(), help.size()) << binary << " --help=" << flag.substr(2);
    // --version: the project's version and how it was built (Abseil's own says
    // "Debug build" of every binary).
    std::string version = run("--version", 0);
    EXPECT_TRUE(
        absl::StartsWith(version, absl::StrCat(binary, " ", HR_VERSION, " (hybrid-router)\n")))
        << version;
    EXPECT_TRUE(absl::StrContains(version, absl::StrCat(HR_BUILD_TYPE, " build"))) << version;
    // A flag it does not know is still an error, not help.
    std::string unknown = run("--no_such_flag", 1);
    EXPECT_TRUE(absl::StrContains(unknown, "Unknown command line flag 'no_such_flag'")) << unknown;
  }
}

TEST(BinariesTest, HrctlSaysWhatIsMissingAndWhereNoDeviceAnswered) {
  const std::string dir = MakeTestDir();
  // No prompt: said before connecting anywhere.
  Process no_prompt({HR_BIN_DIR "/hrctl", "generate", "--locale=en-US"}, dir + "/no_prompt.log");
  EXPECT_EQ(no_prompt.WaitExit(absl::Seconds(30)), 2);
  EXPECT_TRUE(absl::StrContains(ReadFile(dir + "/no_prompt.log"), "error: no prompt"))
      << ReadFile(dir + "/no_prompt.log");
  // Nothing listens on the socket: the error says which target was tried. The
  // prompt's words "help", "version" and "h" are words, not requests for help.
  const std::string target = "unix:" + dir + "/nobody.sock";
  Process nobody(
      {HR_BIN_DIR "/hrctl", "explain", "--target=" + target, "I", "need", "help", "version", "h"},
      dir + "/nobody.log");
  EXPECT_EQ(nobody.WaitExit(absl::Seconds(30)), 1);
  const std::string said = ReadFile(dir + "/nobody.log");
  EXPECT_TRUE(absl::StrContains(said, "error: UNAVAILABLE")) << said;
  EXPECT_TRUE(absl::StrContains(said, "no hr-device answered at " + target)) << said;
}

TEST(TopologyTest, HrctlScoreMatchesTheDeviceRouter) {
  Topology t(std::vector<BackendSpec>{BackendSpec{"us-east-1-a", "us-east-1"}});
  const std::vector<std::string> prompts = {"What is the capital of France?",
                                            "Solve step by step: if 3x + 7 = 22, what is x?",
                                            "请一步一步计算 3x + 7 = 22"};
  std::string in = t.dir() + "/prompts.jsonl";
  {
    std::ofstream f(in);
    // Written as on Windows, with a blank line: both are read as the device reads.
    for (const auto& p : prompts) f << "{\"prompt\": \"" << p << "\", \"other\": 1}\r\n\r\n";
  }
  std::string out = t.dir() + "/scores.jsonl";
  std::string cmd = std::string(HR_BIN_DIR "/hrctl score --complexity_model=" HR_SOURCE_DIR
                                "/models/complexity.pb < ") + in + " > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::vector<std::string> lines = absl::StrSplit(ReadFile(out), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    grpc::ClientContext ctx;
    v1::RouteInfo info;
    ASSERT_TRUE(t.device()->Explain(&ctx, Request("en-US", prompts[i], false,
                                                  v1::ROUTE_HINT_UNSPECIFIED), &info).ok());
    EXPECT_TRUE(absl::StrContains(lines[i], absl::StrFormat("\"score\":%.6f,", info.complexity_score())))
        << lines[i] << " vs " << info.complexity_score();
    EXPECT_TRUE(absl::StrContains(lines[i], absl::StrFormat("\"threshold\":%.6f,", info.complexity_threshold())))
        << lines[i];
    EXPECT_EQ(absl::StrContains(lines[i], "\"decision\":\"cloud\""), info.target() == v1::CLOUD)
        << lines[i];
    // The shipped model learned no Chinese: the heuristic scores the last prompt,
    // and both say so.
    const bool heuristic = i == 2;
    EXPECT_TRUE(absl::StrContains(lines[i],
                                  heuristic ? "\"scorer\":\"heuristic\"" : "\"scorer\":\"model\""))
        << lines[i];
    ASSERT_FALSE(info.reasons().empty());
    EXPECT_EQ(absl::StrContains(info.reasons(0), "heuristic"), heuristic) << info.reasons(0);
  }
  // hr-device said so at start, for its operator.
  const std::string log = ReadFile(t.device_process().log_path());
  EXPECT_TRUE(absl::StrContains(log, "mostly-CJK text: the heuristic (0 of its training prompts)"))
      << log;
}

TEST(BinariesTest, HrctlDetectPrintsByteSpansAndAnErrorPerBadLine) {
  const std::string dir = MakeTestDir();
  {
    std::ofstream f(dir + "/prompts.jsonl");
    f << R"({"prompt": "请拨打13812345678联系我"})"
      << "\n"
      << R"({"prompt": "mail bob@example.com, SSN 123-45-6789"})"
      << "\n"
      << "{}\n"
      << "not json\n"
      << R"({"prompt": "nothing to see"})"
      << "\n";
  }
  const std::string cmd =
      absl::StrCat(HR_BIN_DIR "/hrctl detect < ", dir, "/prompts.jsonl > ", dir, "/spans.jsonl");
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);  // two lines could not be read
  std::vector<std::string> lines =
      absl::StrSplit(ReadFile(dir + "/spans.jsonl"), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u);
  // Offsets are bytes: each Chinese character before the number is three.
  EXPECT_EQ(lines[0], R"({"spans":[{"type":"PHONE","start":9,"end":20,"text":"13812345678"}]})");
  EXPECT_EQ(lines[1], R"({"spans":[{"type":"EMAIL","start":5,"end":20,"text":"bob@example.com"},)"
                      R"({"type":"US_SSN","start":26,"end":37,"text":"123-45-6789"}]})");
  EXPECT_EQ(lines[2], R"({"error":"line 3: the `prompt` field is missing or empty"})");
  EXPECT_TRUE(absl::StartsWith(lines[3], R"({"error":"line 4: )")) << lines[3];
  EXPECT_EQ(lines[4], R"({"spans":[]})");
}

TEST(TopologyTest, ExplainShowsTheDecisionAndTheRule) {
  Topology t(std::vector<BackendSpec>{BackendSpec{"us-east-1-a", "us-east-1"}});
  grpc::ClientContext ctx;
  v1::RouteInfo info;
  auto req = Request("de-AT", "My doctor says I have diabetes", true);
  ASSERT_TRUE(t.device()->Explain(&ctx, req, &info).ok());
  EXPECT_EQ(info.target(), v1::LOCAL);
  EXPECT_EQ(info.jurisdiction(), "eu");
  EXPECT_EQ(info.rule_ids(0), "eu.category.HEALTH");
  EXPECT_EQ(info.policy_version(), "2026-11-example-1");
  EXPECT_EQ(t.Received("us-east-1-a"), "");
}

}  // namespace
}  // namespace hr::testing
