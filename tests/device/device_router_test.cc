// DeviceRouter's orchestration over a fake cloud client and a synthetic local
#include <fstream>
#include <sstream>
// engine: which backends are tried, in what order, and what the client sees.
#include <functional>
#include <thread>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "device_stub/device_router.h"
#include "engine/synthetic_engine.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace hr::device {
namespace {

// What a fake backend does with a call.
struct Script {
  absl::Status fail_before_start;  // not OK: fail at once
  std::string region;              // announced in CloudStart
  bool echo = true;                // answer with the last user message; else an empty answer
  absl::Status fail_after_text;    // not OK: fail after the first text
  std::function<void()> when_called;  // runs as the call starts
  bool announce = true;               // send CloudStart before anything else
  std::string done_region;            // named in CloudDone; empty: `region`
  bool inline_call = false;           // the whole call runs before Start returns
};

// What a fake backend sends for `request`, as `s` says.
void Play(const Script& s, const v1::CloudRequest& request, const CloudCallbacks& cb) {
  if (!s.fail_before_start.ok()) return cb.on_done(s.fail_before_start, "");
  if (s.announce) {
    v1::CloudStart start;
    start.set_region(s.region);
    cb.on_start(start);
  }
  std::string last = s.echo ? std::string(request.messages().rbegin()->content()) : "";
  if (!last.empty()) cb.on_text(last.substr(0, 3));
  if (!s.fail_after_text.ok()) return cb.on_done(s.fail_after_text, "");
  v1::CloudDone done;
  done.set_region(s.done_region.empty() ? s.region : s.done_region);
  done.set_finish_reason("eos");
  // The rest comes with the final message.
  cb.on_done(done, last.substr(std::min<size_t>(3, last.size())));
}

class FakeCall : public CloudCall {
 public:
  explicit FakeCall(CloudCallbacks cb) : callbacks_(std::move(cb)) {}
  void Cancel() override {}

 private:
  CloudCallbacks callbacks_;  // held as gRPC's calls hold theirs, until the call is dropped
};

// Runs each call's script on its own thread, as gRPC would call back.
class FakeCloud : public CloudClient {
 public:
  ~FakeCloud() override { JoinAll(); }

  // Waits for every call's thread, those that calls start while it waits too (a
  // failed call's callback starts the next attempt from its own thread). The
  // router must outlive them: the test's destructor calls this first.
  void JoinAll() {
    while (true) {
      std::thread t;
      {
        absl::MutexLock lock(&mu_);
        if (joined_ == threads_.size()) return;
        t = std::move(threads_[joined_++]);
      }
      t.join();
    }
  }

  std::shared_ptr<CloudCall> Start(const v1::Backend& backend, const v1::CloudRequest& request,
                                   absl::Time, CloudCallbacks cb) override {
    Script s;
    {
      absl::MutexLock lock(&mu_);
      calls.push_back({backend.name(), request});
      s = scripts[backend.name()];
      if (s.when_called) s.when_called();
      if (!s.inline_call) threads_.emplace_back([s, request, cb] { Play(s, request, cb); });
    }
    if (s.inline_call) Play(s, request, cb);
    return std::make_shared<FakeCall>(std::move(cb));
  }
  bool IsDown(const v1::Backend&) override { return false; }

  absl::flat_hash_map<std::string, Script> scripts;
  struct Call {
    std::string backend;
    v1::CloudRequest request;
  };
  std::vector<Call> calls;

 private:
  absl::Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  size_t joined_ ABSL_GUARDED_BY(mu_) = 0;  // threads_[0, joined_) are joined
};

class Collector : public ResponseStream {
 public:
  bool Send(v1::GenerateResponse r) override {
    absl::MutexLock lock(&mu_);
    if (r.has_route()) route = r.route();
    if (r.has_chunk()) text += r.chunk().text();
    responses.push_back(std::move(r));
    return true;
  }
  void Finish(const absl::Status& s) override {
    status = s;
    done.Notify();
  }
  void OnCancel(std::function<void()>) override {}
  absl::Mutex mu_;
  std::vector<v1::GenerateResponse> responses;
  v1::RouteInfo route;
  std::string text;
  absl::Status status;
  absl::Notification done;
};

constexpr char kBackends[] = R"pb(
  backends { name: "cn-a" address: "x:1" region: "cn-north-1" model_family: "qwen" }
  backends { name: "cn-b" address: "x:2" region: "cn-east-1" model_family: "qwen" }
  backends { name: "eu-a" address: "x:3" region: "eu-central-1" model_family: "qwen" }
  backends { name: "us-a" address: "x:4" region: "us-east-1" model_family: "llama" }
)pb";

class DeviceRouterTest : public ::testing::Test {
 protected:
  DeviceRouterTest() : health_(router::OutlierOptions{}) {
    v1::Backends backends;
    google::protobuf::TextFormat::ParseFromString(kBackends, &backends);
    // The shipped policy with this test's backends.
    auto compiled = policy::ResidencyPolicy::Create(ShippedPolicy(), backends);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    std::vector<std::unique_ptr<engine::Generator>> gens;
    gens.push_back(engine::NewSyntheticGenerator({0, true}));
    local_ = std::make_unique<engine::EnginePool>(std::move(gens), 4);
    cloud_.scripts["cn-a"] = {absl::OkStatus(), "cn-north-1"};
    cloud_.scripts["cn-b"] = {absl::OkStatus(), "cn-east-1"};
    cloud_.scripts["eu-a"] = {absl::OkStatus(), "eu-central-1"};
    cloud_.scripts["us-a"] = {absl::OkStatus(), "us-east-1"};
    router_ = std::make_unique<DeviceRouter>(DeviceRouterOptions{}, *compiled, local_.get(),
                                             &cloud_, &health_);
  }

  ~DeviceRouterTest() override { cloud_.JoinAll(); }

  // `p` joined with this test's backends.
  static std::shared_ptr<const policy::ResidencyPolicy> Compile(
      const v1::Policy& p, const std::string& backends_text = kBackends) {
    v1::Backends backends;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(backends_text, &backends));
    auto compiled = policy::ResidencyPolicy::Create(p, backends);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return compiled.ok() ? *compiled : nullptr;
  }

  static v1::Policy ShippedPolicy() {
    std::ifstream in(HR_SOURCE_DIR "/deploy/local/policy.textproto");
    std::stringstream ss;
    ss << in.rdbuf();
    v1::Policy p;
    google::protobuf::TextFormat::ParseFromString(ss.str(), &p);
    return p;
  }

  std::unique_ptr<Collector> Run(const std::string& locale, const std::string& prompt,
                                 bool consent = true) {
    v1::GenerateRequest r;
    r.set_locale(locale);
    r.set_cloud_consent(consent);
    r.set_hint(v1::PREFER_CLOUD);
    auto* m = r.add_messages();
    m->set_role("user");
    m->set_content(prompt);
    auto c = std::make_unique<Collector>();
    // The collector must outlive the run: hand out a non-owning shared_ptr.
    router_->Generate(r, absl::InfiniteFuture(),
                      std::shared_ptr<ResponseStream>(c.get(), [](ResponseStream*) {}));
    c->done.WaitForNotification();
    return c;
  }

  std::vector<std::string> Called() {
    std::vector<std::string> out;
    for (const auto& c : cloud_.calls) out.push_back(c.backend);
    return out;
  }

  router::BackendHealth health_;
  std::unique_ptr<engine::EnginePool> local_;
  FakeCloud cloud_;
  std::unique_ptr<DeviceRouter> router_;
};

TEST_F(DeviceRouterTest, RouteInfoTravelsWithTheFirstTextAndDoneComesLast) {
  auto c = Run("en-US", "hello there");
  ASSERT_TRUE(c->status.ok()) << c->status;
  // The backend sent "hel", then "lo there" with its final message: the route
  // rides with the first text, and the last text with done.
  const std::vector<v1::GenerateResponse>& r = c->responses;
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].has_route());
  EXPECT_EQ(r[0].chunk().text(), "hel");
  EXPECT_FALSE(r[0].has_done());
  EXPECT_FALSE(r[1].has_route());
  EXPECT_EQ(r[1].chunk().text(), "lo there");
  EXPECT_TRUE(r[1].has_done());
  EXPECT_EQ(c->route.target(), v1::CLOUD);
  EXPECT_EQ(c->route.region(), "us-east-1");
  EXPECT_EQ(c->text, "hello there");
  EXPECT_EQ(Called(), std::vector<std::string>{"us-a"});
}

TEST_F(DeviceRouterTest, FailsOverOnlyAmongAllowedBackends) {
  cloud_.scripts["cn-a"].fail_before_start = absl::UnavailableError("down");
  cloud_.scripts["cn-b"].fail_before_start = absl::UnavailableError("down");
  auto c = Run("zh-CN", "你好啊朋友们");
  EXPECT_EQ(c->status.code(), absl::StatusCode::kUnavailable) << c->status;
  EXPECT_NE(c->status.message().find("FAIL_CLOSED"), absl::string_view::npos);
  auto called = Called();
  std::sort(called.begin(), called.end());
  EXPECT_EQ(called, (std::vector<std::string>{"cn-a", "cn-b"}));  // never eu-a or us-a
  EXPECT_TRUE(c->responses.empty());
}

TEST_F(DeviceRouterTest, RetriesOnTheNextBackendBeforeTheFirstText) {
  cloud_.scripts["cn-a"].fail_before_start = absl::UnavailableError("down");
  // The two cn backends take turns at being first: over two requests, one
  // starts with the failing backend and must be retried on the other.
  for (int i = 0; i < 2; ++i) {
    auto c = Run("zh-CN", "你好啊朋友们");
    ASSERT_TRUE(c->status.ok()) << c->status;
    EXPECT_EQ(c->text, "你好啊朋友们");
    EXPECT_EQ(c->route.region(), "cn-east-1");
    EXPECT_EQ(c->route.backend(), "cn-b");
  }
  EXPECT_EQ(Called().size(), 3u);
}

TEST_F(DeviceRouterTest, NoRetryOnceTextReachedTheClient) {
  cloud_.scripts["us-a"].fail_after_text = absl::UnavailableError("crashed");
  auto c = Run("en-US", "hello there");
  EXPECT_EQ(c->status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(c->status.message().find("mid-answer"), absl::string_view::npos);
  EXPECT_EQ(Called().size(), 1u);
  EXPECT_EQ(c->text, "hel");
}

TEST_F(DeviceRouterTest, FallsBackLocallyWhenThePolicySaysSo) {
  cloud_.scripts["eu-a"].fail_before_start = absl::UnavailableError("down");
  auto c = Run("de-DE", "Guten Tag");
  ASSERT_TRUE(c->status.ok()) << c->status;
  EXPECT_EQ(c->route.target(), v1::LOCAL);
  EXPECT_TRUE(c->route.fell_back());
  EXPECT_EQ(c->route.rule_ids(c->route.rule_ids_size() - 1), "eu.when_unavailable");
  EXPECT_EQ(c->text, "Guten Tag");  // the synthetic local engine echoes
  EXPECT_EQ(Called(), std::vector<std::string>{"eu-a"});
}

TEST_F(DeviceRouterTest, ABusyLocalModelAfterAFallbackSaysWhyTheCloudDidNotServe) {
  // A local model that answers slowly and queues nothing, kept busy.
  std::vector<std::unique_ptr<engine::Generator>> gens;
  gens.push_back(engine::NewSyntheticGenerator({5, false}));
  engine::EnginePool busy(std::move(gens), 0);
  auto hog = std::make_shared<engine::GenerationJob>();
  hog->messages.push_back({"user", "keep the model busy"});
  hog->max_tokens = 1000;
  hog->on_text = [](absl::string_view) {};
  absl::Notification hog_done;
  hog->on_done = [&hog_done](absl::StatusOr<engine::GenerationResult>) { hog_done.Notify(); };
  ASSERT_TRUE(busy.Submit(hog).ok());
  router_ = std::make_unique<DeviceRouter>(DeviceRouterOptions{}, Compile(ShippedPolicy()), &busy,
                                           &cloud_, &health_);
  cloud_.scripts["eu-a"].fail_before_start = absl::UnavailableError("down");

  auto c = Run("de-DE", "Guten Tag");
  EXPECT_EQ(c->status.code(), absl::StatusCode::kResourceExhausted) << c->status;
  EXPECT_TRUE(absl::StrContains(c->status.message(), "the local model is busy")) << c->status;
  EXPECT_TRUE(absl::StrContains(c->status.message(),
                                "the request fell back to the local model because no allowed "
                                "backend could serve: eu-a (eu-central-1): UNAVAILABLE down"))
      << c->status;
  // Busy without a fallback first: the local model's reason alone.
  auto direct = Run("ja-JP", "こんにちは");
  EXPECT_EQ(direct->status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(absl::StrContains(direct->status.message(), "fell back")) << direct->status;

  hog->cancelled.store(true);
  hog_done.WaitForNotification();
  router_.reset();
}

TEST_F(DeviceRouterTest, BackendAnnouncingAnotherRegionIsDropped) {
  cloud_.scripts["us-a"].region = "eu-central-1";  // misconfigured backends file
  auto c = Run("en-US", "hello there");
  // us allows only us-east-1 and falls back locally.
  ASSERT_TRUE(c->status.ok()) << c->status;
  EXPECT_EQ(c->route.target(), v1::LOCAL);
  EXPECT_TRUE(c->route.fell_back());
}

TEST_F(DeviceRouterTest, ACallThatEndsBeforeItsStartReturnsIsNotKept) {
  // The request ends inside CloudClient::Start. Were the router to keep the
  // call then, the call (holding the router's callbacks) and the request's run
  // (holding the call) would keep each other, and the app's stream, forever.
  cloud_.scripts["us-a"].inline_call = true;
  v1::GenerateRequest r;
  r.set_locale("en-US");
  r.set_hint(v1::PREFER_CLOUD);
  r.add_messages()->set_role("user");
  r.mutable_messages(0)->set_content("hello there");
  Collector c;
  bool released = false;
  router_->Generate(r, absl::InfiniteFuture(),
                    std::shared_ptr<ResponseStream>(&c, [&](ResponseStream*) { released = true; }));
  ASSERT_TRUE(c.done.HasBeenNotified());
  EXPECT_TRUE(c.status.ok()) << c.status;
  EXPECT_EQ(c.route.backend(), "us-a");
  EXPECT_EQ(c.text, "hello there");
  EXPECT_TRUE(released);
}

// The last reason of a fallback says why no backend served.
std::string FallbackReason(const v1::RouteInfo& route) {
  return route.reasons_size() == 0 ? "" : route.reasons(route.reasons_size() - 1);
}

TEST_F(DeviceRouterTest, BackendSendingTextBeforeAnnouncingItsRegionIsDropped) {
  cloud_.scripts["us-a"].announce = false;
  auto c = Run("en-US", "hello there");
  ASSERT_TRUE(c->status.ok()) << c->status;
  EXPECT_EQ(c->route.target(), v1::LOCAL);  // us has no other backend
  EXPECT_TRUE(c->route.fell_back());
  EXPECT_TRUE(absl::StrContains(FallbackReason(c->route),
                                "us-a (us-east-1): FAILED_PRECONDITION backend sent text before "
                                "announcing its region"))
      << FallbackReason(c->route);
  for (const v1::GenerateResponse& r : c->responses) {
    EXPECT_NE(r.route().target(), v1::CLOUD);  // nothing went out as the cloud's
  }
  EXPECT_EQ(Called(), std::vector<std::string>{"us-a"});

  // With another allowed backend, the request goes on to it.
  cloud_.scripts["cn-a"].announce = false;
  for (int i = 0; i < 2; ++i) {  // the cn backends take turns at being first
    auto cn = Run("zh-CN", "你好啊朋友们");
    ASSERT_TRUE(cn->status.ok()) << cn->status;
    EXPECT_EQ(cn->route.backend(), "cn-b");
    EXPECT_EQ(cn->text, "你好啊朋友们");
  }
}

TEST_F(DeviceRouterTest, AnAnswerWithoutARegionAnnouncedIsNotUsed) {
  // No text at all: only the final message, and no start before it.
  cloud_.scripts["us-a"].announce = false;
  cloud_.scripts["us-a"].echo = false;
  auto c = Run("en-US", "hello there");
  ASSERT_TRUE(c->status.ok()) << c->status;
  EXPECT_EQ(c->route.target(), v1::LOCAL);
  EXPECT_TRUE(c->route.fell_back());
  EXPECT_TRUE(absl::StrContains(FallbackReason(c->route),
                                "backend ended its answer without announcing its region"))
      << FallbackReason(c->route);
}

TEST_F(DeviceRouterTest, AFinalMessageNamingAnotherRegionIsNotUsed) {
  cloud_.scripts["us-a"].done_region = "eu-central-1";
  cloud_.scripts["us-a"].echo = false;  // nothing reached the app before it
  auto c = Run("en-US", "hello there");
  ASSERT_TRUE(c->status.ok()) << c->status;
  EXPECT_EQ(c->route.target(), v1::LOCAL);
  EXPECT_TRUE(c->route.fell_back());
  EXPECT_TRUE(absl::StrContains(FallbackReason(c->route),
                                "backend named region 'eu-central-1' in its final message but is "
                                "configured in 'us-east-1'"))
      << FallbackReason(c->route);

  // After text reached the app, the answer cannot be taken back: it ends
  // UNAVAILABLE rather than OK.
  cloud_.scripts["us-a"].echo = true;
  auto mid = Run("en-US", "hello there");
  EXPECT_EQ(mid->status.code(), absl::StatusCode::kUnavailable) << mid->status;
  EXPECT_TRUE(absl::StrContains(mid->status.message(), "named region 'eu-central-1'"))
      << mid->status;
}

TEST_F(DeviceRouterTest, RedactsBeforeSendingAndRestoresTheAnswer) {
  auto c = Run("zh-CN", "ID 11010519491231002X ok");
  ASSERT_TRUE(c->status.ok()) << c->status;
  ASSERT_EQ(cloud_.calls.size(), 1u);
  std::string sent = std::string(cloud_.calls[0].request.messages(0).content());
  EXPECT_EQ(sent, "ID [CN_RESIDENT_ID_1] ok");
  EXPECT_EQ(c->text, "ID 11010519491231002X ok");
  ASSERT_EQ(c->route.redactions_size(), 1);
  EXPECT_EQ(c->route.redactions(0).category(), v1::CN_RESIDENT_ID);
  const auto& claim = cloud_.calls[0].request.claim();
  EXPECT_EQ(claim.jurisdiction(), "cn");
  EXPECT_EQ(std::vector<std::string>(claim.allowed_regions().begin(), claim.allowed_regions().end()),
            (std::vector<std::string>{"cn-east-1", "cn-north-1"}));
}

TEST_F(DeviceRouterTest, PolicyReloadAppliesToNewRequests) {
  v1::Policy p = ShippedPolicy();
  p.set_version("reloaded");
  p.mutable_jurisdictions(2)->clear_cloud();  // us becomes local-only
  v1::Backends backends;
  google::protobuf::TextFormat::ParseFromString(kBackends, &backends);
  auto compiled = policy::ResidencyPolicy::Create(p, backends);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  router_->SetPolicy(*compiled);
  auto c = Run("en-US", "hello there");
  ASSERT_TRUE(c->status.ok());
  EXPECT_EQ(c->route.target(), v1::LOCAL);
  EXPECT_EQ(c->route.policy_version(), "reloaded");
  EXPECT_TRUE(Called().empty());
}

// The cn backend called first fails, and as it is called the policy is reloaded
// with `edit` applied to cn (given the failed backend's region); the other cn
// backend would serve. (The two take turns at being tried first.)
class FailoverAfterReloadTest : public DeviceRouterTest {
 protected:
  void ReloadOnFirstCall(std::function<void(v1::Jurisdiction*, const std::string&)> edit,
                         const std::string& backends = kBackends) {
    router_->SetPolicy(Compile(ShippedPolicy()));
    cloud_.calls.clear();
    auto called = std::make_shared<bool>(false);
    for (const auto& [name, other, region] :
         {std::tuple<std::string, std::string, std::string>{"cn-a", "cn-b", "cn-north-1"},
          {"cn-b", "cn-a", "cn-east-1"}}) {
      cloud_.scripts[name].fail_before_start = absl::UnavailableError("down");
      cloud_.scripts[name].when_called = [this, edit, backends, called, other = other,
                                          region = region] {
        if (*called) return;
        *called = true;
        cloud_.scripts[other].fail_before_start = absl::OkStatus();
        v1::Policy p = ShippedPolicy();
        p.set_version("reloaded");
        edit(p.mutable_jurisdictions(0), region);
        router_->SetPolicy(Compile(p, backends));
      };
    }
  }
};

TEST_F(FailoverAfterReloadTest, GoesOnlyWhereTheNewPolicyAllows) {
  // cn now allows only the failed backend's region: the other cn backend,
  // allowed when the request was decided, is not tried.
  ReloadOnFirstCall([](v1::Jurisdiction* cn, const std::string& failed_region) {
    cn->mutable_cloud()->clear_allowed_regions();
    cn->mutable_cloud()->add_allowed_regions(failed_region);
  });
  auto c = Run("zh-CN", "你好啊朋友们");
  EXPECT_EQ(c->status.code(), absl::StatusCode::kUnavailable) << c->status;
  EXPECT_NE(c->status.message().find("FAIL_CLOSED"), absl::string_view::npos) << c->status;
  EXPECT_NE(c->status.message().find("policy version reloaded no longer allows it"),
            absl::string_view::npos)
      << c->status;
  EXPECT_EQ(Called().size(), 1u);
}

TEST_F(FailoverAfterReloadTest, GoesOnWhenTheNewPolicyAllowsTheSame) {
  ReloadOnFirstCall([](v1::Jurisdiction*, const std::string&) {});
  auto c = Run("zh-CN", "你好啊朋友们");
  ASSERT_TRUE(c->status.ok()) << c->status;
  EXPECT_EQ(Called().size(), 2u);
  EXPECT_EQ(c->text, "你好啊朋友们");
}

TEST_F(FailoverAfterReloadTest, SkipsABackendTheNewBackendsFileDescribesOtherwise) {
  // Same policy, but both cn backends are now to be reached over TLS: the
  // attempt left would go in plaintext, as the old file said.
  const std::string over_tls =
      absl::StrReplaceAll(kBackends, {{"region: \"cn-north-1\" model_family: \"qwen\"",
                                       "region: \"cn-north-1\" model_family: \"qwen\" tls {}"},
                                      {"region: \"cn-east-1\" model_family: \"qwen\"",
                                       "region: \"cn-east-1\" model_family: \"qwen\" tls {}"}});
  ASSERT_NE(over_tls, kBackends);
  ReloadOnFirstCall([](v1::Jurisdiction*, const std::string&) {}, over_tls);
  auto c = Run("zh-CN", "你好啊朋友们");
  EXPECT_EQ(c->status.code(), absl::StatusCode::kUnavailable) << c->status;
  EXPECT_NE(c->status.message().find("no longer allows it"), absl::string_view::npos) << c->status;
  EXPECT_EQ(Called().size(), 1u);
}

TEST_F(FailoverAfterReloadTest, EndsWithTheNewPolicysRefusal) {
  // The request holds a resident ID, which cn now denies instead of redacting.
  ReloadOnFirstCall([](v1::Jurisdiction* cn, const std::string&) {
    ASSERT_EQ(cn->categories(0).category(), v1::CN_RESIDENT_ID);
    cn->mutable_categories(0)->set_action(v1::DENY);
  });
  auto c = Run("zh-CN", "ID 11010519491231002X ok");
  EXPECT_EQ(c->status.code(), absl::StatusCode::kPermissionDenied) << c->status;
  EXPECT_EQ(Called().size(), 1u);
}

TEST_F(FailoverAfterReloadTest, SkipsABackendWhenTheNewPolicyRedactsMore) {
  // Sent with the resident ID redacted; the new policy also redacts e-mail
  // addresses, which this request was sent with in the clear.
  ReloadOnFirstCall([](v1::Jurisdiction* cn, const std::string&) {
    v1::CategoryRule* r = cn->add_categories();
    r->set_category(v1::EMAIL);
    r->set_action(v1::REDACT);
  });
  auto c = Run("zh-CN", "write to li@example.com");
  EXPECT_EQ(c->status.code(), absl::StatusCode::kUnavailable) << c->status;
  EXPECT_NE(c->status.message().find("redacts other categories"), absl::string_view::npos)
      << c->status;
  EXPECT_EQ(Called().size(), 1u);
}

TEST_F(DeviceRouterTest, ExplainDecidesWithoutRunning) {
  v1::GenerateRequest r;
  r.set_locale("de-DE");
  auto* m = r.add_messages();
  m->set_role("user");
  m->set_content("My doctor says my blood pressure is high");
  r.set_cloud_consent(true);
  auto info = router_->Explain(r);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->target(), v1::LOCAL);
  EXPECT_EQ(info->rule_ids(0), "eu.category.HEALTH");
  EXPECT_TRUE(Called().empty());
}

}  // namespace
}  // namespace hr::device
