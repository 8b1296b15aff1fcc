// hr-load against real hr-device and hr-cloud processes on loopback.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "load.pb.h"
#include "tests/integration/harness.h"

namespace hr::testing {
namespace {

namespace tools = ::hybridrouter::tools;
using ::testing::HasSubstr;

struct LoadRun {
  int exit_code = -1;
  tools::LoadReport report;
  std::string output;  // stdout and stderr
};

// hr-load running in the background with `flags` and a workload written from
// `workload`; Finish waits for it and reads its JSON report.
class LoadProcess {
 public:
  LoadProcess(const std::string& dir, const std::string& name, const std::string& workload,
              std::vector<std::string> flags)
      : json_path_(dir + "/" + name + ".json") {
    const std::string workload_path = dir + "/" + name + ".workload";
    std::ofstream(workload_path) << workload;
    std::vector<std::string> argv = {HR_BIN_DIR "/hr-load", "--workload=" + workload_path,
                                     "--json=" + json_path_,
                                     "--policy=" HR_SOURCE_DIR "/deploy/local/policy.textproto"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    process_ = std::make_unique<Process>(argv, dir + "/" + name + ".log");
  }

  LoadRun Finish() {
    LoadRun run;
    run.exit_code = process_->WaitExit(absl::Seconds(120));
    run.output = ReadFile(process_->log_path());
    google::protobuf::util::JsonParseOptions opts;
    auto parsed =
        google::protobuf::util::JsonStringToMessage(ReadFile(json_path_), &run.report, opts);
    // Exit codes 0 and 1 come with a report; 2 (bad usage, no connection) does not.
    if (run.exit_code == 0 || run.exit_code == 1) {
      EXPECT_TRUE(parsed.ok()) << "no JSON report; output:\n" << run.output;
    }
    return run;
  }

 private:
  std::string json_path_;
  std::unique_ptr<Process> process_;
};

// Runs hr-load to its end (see LoadProcess).
LoadRun RunLoad(const std::string& dir, const std::string& name, const std::string& workload,
                std::vector<std::string> flags) {
  return LoadProcess(dir, name, workload, std::move(flags)).Finish();
}

std::map<std::string, int64_t> Routes(const tools::LoadReport& r) {
  std::map<std::string, int64_t> out;
  for (const auto& route : r.routes()) out[route.route()] = route.requests();
  return out;
}

std::map<std::string, int64_t> Codes(const tools::LoadReport& r) {
  std::map<std::string, int64_t> out;
  for (const auto& s : r.statuses()) out[s.code()] = s.count();
  return out;
}

// A local engine that never makes the load wait (the synthetic one, unthrottled,
// with room for every request): these tests are about the harness.
const std::vector<std::string> kFastLocal = {"--local_engine=synthetic",
                                             "--local_synthetic_tokens_per_second=0",
                                             "--local_slots=4", "--local_max_queue=256"};

constexpr char kMixed[] = R"pb(
  locales { locale: "zh-CN" weight: 2 hint: PREFER_CLOUD }
  locales { locale: "de-DE" cloud_consent: true hint: PREFER_CLOUD }
  locales { locale: "ja-JP" }
  prompts: "What is the capital of France?"
  prompts: "北京明天的天气怎么样？"
  options { max_tokens: 4 }
)pb";

TEST(LoadTest, ClosedLoopReportsEveryRequestPerRouteWithNoViolations) {
  Topology t({{"cn-north-1-a", "cn-north-1"}, {"eu-west-1-a", "eu-west-1"}}, kFastLocal);
  LoadRun run = RunLoad(t.dir(), "closed", kMixed,
                        {absl::StrCat("--target=127.0.0.1:", t.device_port()),
                         "--mode=closed", "--concurrency=4", "--requests=120", "--duration=0"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const tools::LoadReport& r = run.report;
  EXPECT_EQ(r.requests(), 120);
  EXPECT_EQ(r.ok(), 120) << run.output;
  EXPECT_EQ(r.residency_violations(), 0);
  EXPECT_EQ(r.latency().count(), 120);
  EXPECT_GT(r.latency().p50_us(), 0);
  EXPECT_LE(r.latency().p50_us(), r.latency().p99_us());
  auto routes = Routes(r);
  EXPECT_GT(routes["cloud/cn-north-1"], 0);
  EXPECT_GT(routes["cloud/eu-west-1"], 0);
  EXPECT_GT(routes["local"], 0);
  EXPECT_EQ(routes["cloud/cn-north-1"] + routes["cloud/eu-west-1"] + routes["local"], 120);
  EXPECT_THAT(run.output, HasSubstr("residency violations: 0"));
  EXPECT_THAT(run.output, HasSubstr("cloud/cn-north-1"));
}

TEST(LoadTest, AViolationAgainstTheCheckedPolicyFailsTheRun) {
  // The device follows the shipped policy (cn: cn-north-1 or cn-east-1); hr-load
  // checks against a stricter one (cn: cn-east-1 only), so every zh-CN answer
  // served in cn-north-1 must be reported as a violation.
  Topology t({{"cn-north-1-a", "cn-north-1"}}, kFastLocal);
  const std::string strict = t.dir() + "/strict.textproto";
  std::ofstream(strict) << R"pb(
    version: "strict"
    jurisdictions { id: "cn" countries: "CN" cloud { allowed_regions: "cn-east-1" } }
    default_rule { id: "default" }
  )pb";
  LoadRun run = RunLoad(t.dir(), "strict", kMixed,
                        {absl::StrCat("--target=127.0.0.1:", t.device_port()), "--policy=" + strict,
                         "--requests=40", "--duration=0", "--concurrency=2"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  const int64_t to_cn = Routes(run.report)["cloud/cn-north-1"];
  EXPECT_GT(to_cn, 0);
  EXPECT_EQ(run.report.residency_violations(), to_cn);
  EXPECT_EQ(run.report.policy_version(), "strict");
  ASSERT_GT(run.report.violation_examples_size(), 0);
  EXPECT_EQ(run.report.violation_examples(0).region(), "cn-north-1");
}

TEST(LoadTest, FailuresAreCountedNotDropped) {
  // No cn backend at all: zh-CN fails closed (UNAVAILABLE), de-DE falls back.
  Topology t({{"us-east-1-a", "us-east-1", "llama"}}, kFastLocal);
  LoadRun run = RunLoad(t.dir(), "failing", kMixed,
                        {absl::StrCat("--target=127.0.0.1:", t.device_port()), "--mode=open",
                         "--rps=200", "--requests=60", "--duration=0"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const tools::LoadReport& r = run.report;
  EXPECT_EQ(r.requests(), 60);
  EXPECT_EQ(r.ok() + r.failed(), 60);
  auto codes = Codes(r);
  EXPECT_GT(codes["UNAVAILABLE"], 0);
  EXPECT_EQ(codes["UNAVAILABLE"], r.failed());
  EXPECT_EQ(codes["OK"], r.ok());
  auto routes = Routes(r);
  EXPECT_EQ(routes["none"], codes["UNAVAILABLE"]);
  EXPECT_GT(routes["local-fallback"], 0);
  EXPECT_EQ(r.residency_violations(), 0);
}

TEST(LoadTest, CloudApiLoadsABackendDirectlyWithClaimsFromThePolicy) {
  Topology t({{"eu-west-1-a", "eu-west-1"}}, kFastLocal);
  LoadRun run = RunLoad(
      t.dir(), "direct",
      R"pb(locales { locale: "fr-FR" } prompts: "bonjour" options { max_tokens: 3 })pb",
      {absl::StrCat("--target=127.0.0.1:", t.backend_port("eu-west-1-a")), "--api=cloud",
       "--requests=30", "--duration=0"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.report.ok(), 30) << run.output;
  EXPECT_EQ(Routes(run.report)["cloud/eu-west-1"], 30);
  EXPECT_THAT(t.Received("eu-west-1-a"), HasSubstr("jurisdiction: \"eu\""));

  // A locale the policy keeps local cannot be sent to a backend at all.
  LoadRun refused = RunLoad(
      t.dir(), "local-only", R"pb(locales { locale: "ja-JP" } prompts: "x")pb",
      {absl::StrCat("--target=127.0.0.1:", t.backend_port("eu-west-1-a")), "--api=cloud",
       "--requests=1"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.output, HasSubstr("ja-JP is local only"));
}

TEST(LoadTest, CloudStreamApiSendsEveryRequestOverOneStreamAChannel) {
  BackendSpec eu{"eu-west-1-a", "eu-west-1"};
  eu.flags = {"--log_level=debug"};  // logs each stream opened
  Topology t({eu}, kFastLocal);
  // en-US claims us-east-1 only: the backend refuses those calls one by one,
  // and the stream goes on.
  LoadRun run = RunLoad(
      t.dir(), "streamed",
      R"pb(locales { locale: "fr-FR" }
                             locales { locale: "en-US" }
                             prompts: "bonjour"
                             options { max_tokens: 3 })pb",
      {absl::StrCat("--target=127.0.0.1:", t.backend_port("eu-west-1-a")), "--api=cloud_stream",
       "--channels=2", "--concurrency=8", "--requests=200", "--duration=0"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const tools::LoadReport& r = run.report;
  EXPECT_EQ(r.api(), "cloud_stream");
  EXPECT_EQ(r.requests(), 200);
  auto codes = Codes(r);
  EXPECT_GT(codes["OK"], 0);
  EXPECT_GT(codes["FAILED_PRECONDITION"], 0);
  EXPECT_EQ(codes["OK"] + codes["FAILED_PRECONDITION"], 200) << run.output;
  EXPECT_EQ(Routes(r)["cloud/eu-west-1"], codes["OK"]);
  EXPECT_GT(r.first_chunk().count(), 0);
  EXPECT_EQ(r.residency_violations(), 0);
  // Two channels, two streams, each closed by hr-load at the end.
  const std::string log_path = t.dir() + "/eu-west-1-a.log";
  ASSERT_TRUE(WaitForLog(log_path, "stream ended client=- code=OK"));
  const std::string log = ReadFile(log_path);
  EXPECT_EQ(CountLines(log, "stream opened"), 2) << log;
}

TEST(LoadTest, CloudStreamApiCountsTheCallsOfAStreamThatBreaks) {
  // Slow answers (5 tokens at 20/s), so calls are running when the backend dies.
  BackendSpec eu{"eu-west-1-a", "eu-west-1"};
  eu.flags = {"--synthetic_tokens_per_second=20", "--slots=64", "--max_queue=256"};
  Topology t({eu}, kFastLocal);
  LoadProcess load(
      t.dir(), "broken", R"pb(locales { locale: "fr-FR" } prompts: "un deux trois quatre cinq")pb",
      {absl::StrCat("--target=127.0.0.1:", t.backend_port("eu-west-1-a")), "--api=cloud_stream",
       "--mode=open", "--rps=40", "--requests=80", "--duration=0", "--timeout=5s"});
  // Once a call has been answered: the run goes on for about two seconds more.
  ASSERT_TRUE(WaitForLog(t.dir() + "/eu-west-1-a.log", "code=OK"));
  t.backend_process("eu-west-1-a").Stop(SIGKILL);
  LoadRun run = load.Finish();
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const tools::LoadReport& r = run.report;
  EXPECT_EQ(r.requests(), 80) << run.output;
  auto codes = Codes(r);
  EXPECT_GT(codes["OK"], 0) << run.output;
  EXPECT_GT(codes["UNAVAILABLE"], 0) << run.output;
  EXPECT_EQ(codes["OK"] + codes["UNAVAILABLE"], 80) << run.output;
}

TEST(LoadTest, CloudStreamApiOpensANewStreamWhenTheBackendComesBack) {
  const std::string dir = MakeTestDir();
  auto start_backend = [](const std::string& listen) {
    return std::make_unique<CloudProcess>(
        "eu-west-1", std::vector<std::string>{"--synthetic_tokens_per_second=0", "--slots=64"},
        listen);
  };
  std::unique_ptr<CloudProcess> first = start_backend("127.0.0.1:0");
  const std::string address = first->address();
  LoadProcess load(dir, "reopen", R"pb(locales { locale: "fr-FR" } prompts: "un deux")pb",
                   {"--target=" + address, "--api=cloud_stream", "--mode=open", "--rps=50",
                    "--requests=150", "--duration=0", "--timeout=2s"});
  // Once it has answered: the run goes on for about three seconds more.
  ASSERT_TRUE(WaitForLog(first->log_path(), "code=OK"));
  first->process().Stop(SIGKILL);
  // The same address again, as a restarted backend has it.
  std::unique_ptr<CloudProcess> second = start_backend(address);
  LoadRun run = load.Finish();
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.report.requests(), 150) << run.output;
  auto codes = Codes(run.report);
  EXPECT_EQ(codes["OK"] + codes["UNAVAILABLE"], 150) << run.output;
  // The calls sent after the restart went to the second backend, on a new stream.
  const std::string served = ReadFile(second->log_path());
  const int served_by_second = CountLines(served, "served ");
  EXPECT_GT(served_by_second, 10) << served;
  EXPECT_GE(codes["OK"], served_by_second) << run.output;
}

// hr-cloud sends a connection's client a GOAWAY after --max_connection_age and
// closes it after the grace, ending the calls still on it. Without renewing its
// streams, hr-load keeps one on that connection for the whole run; with
// --stream_max_age well inside the grace, its calls finish on a stream that
// closed in time, and new ones go on a new stream over a new connection.
TEST(LoadTest, CloudStreamApiRenewsItsStreamsBeforeTheBackendClosesTheirConnection) {
  BackendSpec eu{"eu-west-1-a", "eu-west-1"};
  eu.flags = {"--max_connection_age=1s", "--max_connection_age_grace=500ms",
              "--log_level=debug"};  // logs each stream opened
  Topology t({eu}, kFastLocal);
  auto run_with = [&](const std::string& name, const std::string& max_age) {
    return RunLoad(
        t.dir(), name, R"pb(locales { locale: "fr-FR" } prompts: "un deux")pb",
        {absl::StrCat("--target=127.0.0.1:", t.backend_port("eu-west-1-a")), "--api=cloud_stream",
         "--concurrency=8", "--duration=3s", "--timeout=5s", "--stream_max_age=" + max_age});
  };
  auto streams_opened = [&] {
    return CountLines(ReadFile(t.dir() + "/eu-west-1-a.log"), "stream opened");
  };

  LoadRun kept = run_with("kept", "0");
  ASSERT_EQ(kept.exit_code, 0) << kept.output;
  EXPECT_GT(Codes(kept.report)["UNAVAILABLE"], 0) << kept.output;
  const int opened_before = streams_opened();

  LoadRun renewed = run_with("renewed", "200ms");
  ASSERT_EQ(renewed.exit_code, 0) << renewed.output;
  const tools::LoadReport& r = renewed.report;
  EXPECT_GT(r.requests(), 0);
  EXPECT_EQ(Codes(r)["OK"], r.requests()) << renewed.output;
  EXPECT_EQ(r.residency_violations(), 0);
  // About one stream every 200 ms over 3 s. (The first run opened one at the
  // start and another each time the backend ended the last.)
  EXPECT_GE(streams_opened() - opened_before, 8);
}

// With a --stream_max_age far shorter than the run, a channel's stream is retired
// by the next request or so, at times by another thread between the moment a call
// is given the stream and the moment it is added to it. A retired stream still
// takes the calls it was given, so none ends UNAVAILABLE.
TEST(LoadTest, CloudStreamApiStreamRetiredUnderACallStillTakesIt) {
  CloudProcess backend("eu-west-1", {"--synthetic_tokens_per_second=0", "--slots=64",
                                     "--log_level=debug"});  // logs each stream opened
  const std::string dir = MakeTestDir();
  LoadRun run =
      RunLoad(dir, "retired", R"pb(locales { locale: "fr-FR" } prompts: "un deux")pb",
              {"--target=" + backend.address(), "--api=cloud_stream", "--mode=closed",
               "--concurrency=32", "--requests=5000", "--duration=0", "--stream_max_age=1us"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.report.requests(), 5000);
  EXPECT_EQ(Codes(run.report)["OK"], 5000) << run.output;
  EXPECT_GE(CountLines(ReadFile(backend.log_path()), "stream opened"), 100);
}

// A stream that breaks between the moment a call is given it and the moment the
// call is added refuses the call, which then goes on a new stream. Real breaks
// rarely land in that window; --break_streams_every puts one there every few
// calls (when no other call waits on the stream: so one stream at a time in the
// closed loop). No call is lost or fails for it.
TEST(LoadTest, CloudStreamApiCallRefusedByAStreamThatBrokeGoesOnANewOne) {
  CloudProcess backend("eu-west-1", {"--synthetic_tokens_per_second=0", "--slots=64",
                                     "--log_level=debug"});  // logs each stream's end
  const std::string dir = MakeTestDir();
  int runs = 0;
  for (const char* mode : {"open", "closed"}) {
    SCOPED_TRACE(mode);
    LoadRun run = RunLoad(dir, absl::StrCat("broken-", mode),
                          R"pb(locales { locale: "fr-FR" } prompts: "un deux")pb",
                          {"--target=" + backend.address(), "--api=cloud_stream",
                           absl::StrCat("--mode=", mode), "--rps=200", "--concurrency=1",
                           "--requests=300", "--duration=0", "--break_streams_every=10"});
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_EQ(run.report.requests(), 300);
    EXPECT_EQ(Codes(run.report)["OK"], 300) << run.output;
    // How many streams were broken under a call (some so young that the backend
    // never saw them).
    const std::string kBroken =
        "streams broken before a call was added to them (--break_streams_every): ";
    const size_t at = run.output.find(kBroken);
    ASSERT_NE(at, std::string::npos) << run.output;
    const size_t from = at + kBroken.size();
    int broken = -1;
    ASSERT_TRUE(
        absl::SimpleAtoi(run.output.substr(from, run.output.find('\n', from) - from), &broken))
        << run.output;
    EXPECT_GE(broken, 20) << run.output;  // about one call in ten
    ++runs;
  }
  // The backend logs a broken stream as cancelled, and only the stream each run
  // closed at its end as OK.
  auto count = [&](const std::string& what) {
    return CountLines(ReadFile(backend.log_path()), what);
  };
  const int opened = count("stream opened");
  EXPECT_TRUE(Eventually([&] { return count("stream ended") >= opened; }, absl::Seconds(5),
                         absl::Milliseconds(50)))
      << count("stream ended") << " of " << opened << " streams ended";
  EXPECT_EQ(count("stream ended client=- code=OK"), runs) << ReadFile(backend.log_path());
  EXPECT_EQ(count("stream ended client=- code=CANCELLED"), opened - runs);
}

// The same race in hr-device, whose threads (--io_threads=2) share a backend's
// stream: with --stream_max_age=1us a stream is retired by the next request or
// so, at times between the moment a call is given it and the moment the call is
// added. The stream still takes the call, so no attempt fails and no request
// falls back to the local model; and every retired stream closes once its calls
// are done.
TEST(LoadTest, DeviceStreamRetiredUnderACallStillTakesIt) {
  BackendSpec us{"us-east-1-a", "us-east-1"};
  us.shared_stream = true;
  us.flags = {"--slots=64", "--log_level=debug"};  // logs each stream opened and ended
  std::vector<std::string> device_flags = kFastLocal;
  device_flags.insert(device_flags.end(), {"--io_threads=2", "--stream_max_age=1us"});
  Topology t({us}, device_flags);
  const std::string workload = R"pb(
    locales { locale: "en-US" hint: PREFER_CLOUD }
    prompts: "hello there"
    options { max_tokens: 2 }
  )pb";
  LoadRun run = RunLoad(t.dir(), "retired", workload,
                        {absl::StrCat("--target=127.0.0.1:", t.device_port()), "--mode=closed",
                         "--concurrency=32", "--requests=15000", "--duration=0"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.report.ok(), 15000) << run.output;
  EXPECT_EQ(Routes(run.report), (std::map<std::string, int64_t>{{"cloud/us-east-1", 15000}}))
      << run.output;
  EXPECT_FALSE(absl::StrContains(ReadFile(t.dir() + "/device.log"), "attempt failed"));

  auto count = [&](const std::string& what) {
    return CountLines(ReadFile(t.dir() + "/us-east-1-a.log"), what);
  };
  const int opened = count("stream opened");
  EXPECT_GT(opened, 100);
  // All but the current stream end; a stream given a call it never took would not.
  EXPECT_TRUE(Eventually([&] { return count("stream ended") + 1 >= opened; }, absl::Seconds(5),
                         absl::Milliseconds(50)))
      << count("stream ended") << " of " << opened << " streams ended";
}

TEST(LoadTest, CloudApiLoadsABackendOverTls) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificate(certs, "operator-ca", "eu-west-1.backend.test");
  Topology t({TlsBackend("eu-west-1-a", "eu-west-1", certs, "eu-west-1.backend.test")}, kFastLocal);
  const std::string target = absl::StrCat("--target=127.0.0.1:", t.backend_port("eu-west-1-a"));
  const std::string workload =
      R"pb(locales { locale: "fr-FR" } prompts: "bonjour" options { max_tokens: 3 })pb";
  LoadRun run = RunLoad(
      t.dir(), "tls", workload,
      {target, "--api=cloud", "--requests=20", "--duration=0", "--tls",
       "--tls_ca_file=" + certs + "/operator-ca.pem", "--tls_server_name=eu-west-1.backend.test"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.report.ok(), 20) << run.output;
  EXPECT_EQ(Routes(run.report)["cloud/eu-west-1"], 20);

  // The certificate names another host: no connection, and hr-load says so.
  LoadRun wrong = RunLoad(
      t.dir(), "wrong-name", workload,
      {target, "--api=cloud", "--requests=1", "--tls", "--connect_timeout=1s",
       "--tls_ca_file=" + certs + "/operator-ca.pem", "--tls_server_name=cn-north-1.backend.test"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.output, HasSubstr("cannot connect to 127.0.0.1:"));
  EXPECT_THAT(wrong.output, HasSubstr("over TLS"));

  LoadRun half = RunLoad(
      t.dir(), "half", workload,
      {target, "--api=cloud", "--requests=1", "--tls_ca_file=" + certs + "/operator-ca.pem"});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.output, HasSubstr("need --tls"));

  // A private key given as the authorities to trust is refused before connecting.
  LoadRun key_as_ca = RunLoad(t.dir(), "key-as-ca", workload,
                              {target, "--api=cloud", "--requests=1", "--tls",
                               "--tls_ca_file=" + certs + "/operator-ca.key"});
  EXPECT_EQ(key_as_ca.exit_code, 2);
  EXPECT_THAT(key_as_ca.output,
              HasSubstr("--tls_ca_file: " + certs + "/operator-ca.key holds no PEM certificate"));
}

TEST(LoadTest, CloudApiShowsAClientCertificateToABackendThatAsksForOne) {
  const std::string certs = MakeTestDir();
  MakeCertificateAuthority(certs, "operator-ca");
  MakeCertificateAuthority(certs, "device-ca");
  MakeCertificate(certs, "operator-ca", "eu-west-1.backend.test");
  MakeCertificate(certs, "device-ca", "load.test");
  Topology t(
      {MutualTlsBackend("eu-west-1-a", "eu-west-1", certs, "eu-west-1.backend.test", "device-ca")},
      kFastLocal);
  const std::vector<std::string> tls = {
      absl::StrCat("--target=127.0.0.1:", t.backend_port("eu-west-1-a")),
      "--api=cloud",
      "--duration=0",
      "--tls",
      "--tls_ca_file=" + certs + "/operator-ca.pem",
      "--tls_server_name=eu-west-1.backend.test"};
  const std::string workload =
      R"pb(locales { locale: "fr-FR" } prompts: "bonjour" options { max_tokens: 3 })pb";
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> flags = tls;
    flags.insert(flags.end(), more.begin(), more.end());
    return flags;
  };

  LoadRun run = RunLoad(t.dir(), "mtls", workload,
                        with({"--requests=10", "--tls_cert_file=" + certs + "/load.test.pem",
                              "--tls_key_file=" + certs + "/load.test.key"}));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.report.ok(), 10) << run.output;

  const std::string received = t.Received("eu-west-1-a");
  EXPECT_EQ(std::count(received.begin(), received.end(), '\n'), 10);

  // Without a certificate the backend serves nothing: hr-load cannot connect,
  // or its request fails.
  LoadRun none = RunLoad(t.dir(), "no-certificate", workload,
                         with({"--requests=1", "--connect_timeout=2s", "--timeout=2s"}));
  EXPECT_EQ(none.report.ok(), 0) << none.output;
  EXPECT_EQ(t.Received("eu-west-1-a"), received);

  LoadRun half = RunLoad(t.dir(), "half", workload,
                         with({"--requests=1", "--tls_cert_file=" + certs + "/load.test.pem"}));
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.output, HasSubstr("give both or neither"));
}

TEST(LoadTest, StopsAtTheDurationInOpenLoop) {
  Topology t({}, kFastLocal);
  LoadRun run = RunLoad(t.dir(), "timed",
                        R"pb(locales { locale: "ja-JP" } prompts: "x" options { max_tokens: 2 })pb",
                        {absl::StrCat("--target=127.0.0.1:", t.device_port()), "--mode=open",
                         "--rps=100", "--duration=1500ms"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // Poisson arrivals at 100/s for 1.5 s: about 150 (far outside 60..300 is a bug).
  EXPECT_GT(run.report.requests(), 60);
  EXPECT_LT(run.report.requests(), 300);
  EXPECT_EQ(run.report.ok(), run.report.requests());
  EXPECT_EQ(Routes(run.report)["local"], run.report.requests());
  EXPECT_GT(run.report.completion_tokens(), 0);
}

TEST(LoadTest, AFullLocalQueueIsReportedAsResourceExhaustedNotAHang) {
  // One slow local slot and no queue: with four streams, most requests find the
  // pool full and must end at once with RESOURCE_EXHAUSTED.
  Topology t({}, {"--local_engine=synthetic", "--local_synthetic_tokens_per_second=50",
                  "--local_slots=1", "--local_max_queue=0"});
  LoadRun run = RunLoad(t.dir(), "full",
                        R"pb(locales { locale: "ja-JP" } prompts: "x" options { max_tokens: 5 })pb",
                        {absl::StrCat("--target=127.0.0.1:", t.device_port()), "--concurrency=4",
                         "--requests=40", "--duration=0", "--timeout=20s"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  auto codes = Codes(run.report);
  EXPECT_EQ(run.report.requests(), 40);
  EXPECT_GT(codes["OK"], 0);
  EXPECT_GT(codes["RESOURCE_EXHAUSTED"], 0);
  EXPECT_EQ(codes["OK"] + codes["RESOURCE_EXHAUSTED"], 40) << run.output;
  EXPECT_EQ(codes["DEADLINE_EXCEEDED"], 0);
}

TEST(LoadTest, RejectsBadFlagsAndWorkloadsClearly) {
  const std::string dir = MakeTestDir();
  LoadRun run = RunLoad(dir, "bad", R"pb(locales { locale: "en-US" })pb", {"--requests=1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("no prompts"));
  run = RunLoad(dir, "mode", R"pb(locales { locale: "en-US" } prompts: "x")pb",
                {"--mode=sideways"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--mode must be closed or open"));
  run = RunLoad(dir, "unbounded", R"pb(locales { locale: "en-US" } prompts: "x")pb",
                {"--duration=0", "--requests=0"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("never ends"));
  run =
      RunLoad(dir, "channels", R"pb(locales { locale: "en-US" } prompts: "x")pb", {"--channels=0"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--channels must be 1 to 1024"));
  run = RunLoad(dir, "many_channels", R"pb(locales { locale: "en-US" } prompts: "x")pb",
                {"--channels=100000"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--channels must be 1 to 1024"));
  // Every bad flag is named at once.
  run = RunLoad(dir, "several", R"pb(locales { locale: "en-US" } prompts: "x")pb",
                {"--timeout=0s", "--requests=-1", "--duration=-1s", "--connect_timeout=-1s",
                 "--stream_max_age=-1s"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--timeout must be positive"));
  EXPECT_THAT(run.output, HasSubstr("--requests must not be negative"));
  EXPECT_THAT(run.output, HasSubstr("--duration must not be negative"));
  EXPECT_THAT(run.output, HasSubstr("--connect_timeout must be positive"));
  EXPECT_THAT(run.output, HasSubstr("--stream_max_age must not be negative"));
  run = RunLoad(dir, "break", R"pb(locales { locale: "en-US" } prompts: "x")pb",
                {"--break_streams_every=5"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--break_streams_every needs --api cloud_stream"));
}

// How many requests backend `name` of `t` has received so far.
int64_t ReceivedCount(const Topology& t, const std::string& name) {
  const std::string received = t.Received(name);
  return std::count(received.begin(), received.end(), '\n');
}

TEST(LoadTest, NoAnswerLeavesItsRegionsWhileBackendsDieAndThePolicyNarrows) {
  // Under load: a backend is killed with requests in flight on its shared stream,
  // a broken policy is written, then a narrower one, and a backend drains away.
  // Every request must end with an answer or a status, and none may be served
  // outside its allowed regions, before or after the change.
  const std::string shipped = ReadFile(HR_SOURCE_DIR "/deploy/local/policy.textproto");
  const std::string policy_dir = MakeTestDir();
  const std::string policy = policy_dir + "/policy.textproto";
  std::ofstream(policy) << shipped;
  // Backends that take 10 ms a token, so that requests are in flight when one dies.
  auto slow = [](const std::string& name, const std::string& region, bool shared_stream) {
    BackendSpec b{name, region};
    b.shared_stream = shared_stream;
    b.flags = {"--synthetic_tokens_per_second=100", "--slots=16"};
    return b;
  };
  std::vector<std::string> device_flags = kFastLocal;
  device_flags.insert(device_flags.end(), {"--policy=" + policy, "--watch_interval=50ms"});
  Topology t({slow("cn-north-1-a", "cn-north-1", true), slow("cn-east-1-a", "cn-east-1", false),
              slow("eu-west-1-a", "eu-west-1", true), slow("eu-central-1-a", "eu-central-1", false),
              slow("us-east-1-a", "us-east-1", true)},
             device_flags);
  const std::string target = absl::StrCat("--target=127.0.0.1:", t.device_port());
  constexpr char kWorkload[] = R"pb(
    locales { locale: "zh-CN" weight: 2 hint: PREFER_CLOUD }
    locales { locale: "de-DE" weight: 2 cloud_consent: true hint: PREFER_CLOUD }
    locales { locale: "en-US" hint: PREFER_CLOUD }
    locales { locale: "ja-JP" }
    prompts: "What is the capital of France?"
    prompts: "北京明天的天气怎么样？"
    options { max_tokens: 4 }
  )pb";
  auto policy_version = [&t] {
    grpc::ClientContext ctx;
    v1::RouteInfo info;
    EXPECT_TRUE(t.device()->Explain(&ctx, Request("zh-CN", "hi"), &info).ok());
    return info.policy_version();
  };

  LoadProcess during(
      t.dir(), "during", kWorkload,
      {target, "--mode=open", "--rps=150", "--duration=5s", "--requests=0", "--timeout=10s"});
  // Once it has work (its answers take 40 ms, so some is in flight).
  ASSERT_TRUE(Eventually([&t] { return ReceivedCount(t, "cn-north-1-a") > 0; }));
  t.backend_process("cn-north-1-a").Stop(SIGKILL);

  absl::SleepFor(absl::Milliseconds(500));
  std::ofstream(policy) << "version: \"broken\"\nnot_a_field: 1\n";
  ASSERT_TRUE(WaitForLog(t.dir() + "/device.log", "reload failed", absl::Seconds(5)));
  EXPECT_EQ(policy_version(), "2026-11-example-1");

  // China only in cn-east-1, the EU only in eu-central-1; eu-west-1 stays up, its
  // shared stream open.
  const std::string narrow = absl::StrReplaceAll(shipped, {{"2026-11-example-1", "narrow"},
                                                           {"allowed_regions: \"cn-north-1\"", ""},
                                                           {"allowed_regions: \"eu-west-1\"", ""}});
  std::ofstream(policy_dir + "/narrow.textproto") << narrow;
  std::ofstream(policy + ".next") << narrow;
  ASSERT_EQ(std::rename((policy + ".next").c_str(), policy.c_str()), 0);
  ASSERT_TRUE(Eventually([&] { return policy_version() == "narrow"; }, absl::Seconds(5)))
      << ReadFile(t.dir() + "/device.log");
  absl::SleepFor(absl::Milliseconds(500));
  t.StopBackend("eu-central-1-a");  // the EU falls back to the local model

  LoadRun run = during.Finish();
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const tools::LoadReport& r = run.report;
  EXPECT_GT(r.requests(), 300);
  EXPECT_EQ(r.residency_violations(), 0) << run.output;
  auto codes = Codes(r);
  // Killed mid-answer: UNAVAILABLE. Nothing hangs to its deadline, nothing is lost.
  EXPECT_EQ(codes["OK"] + codes["UNAVAILABLE"], r.requests()) << run.output;
  EXPECT_EQ(codes["OK"], r.ok());
  EXPECT_GT(r.ok(), r.requests() * 9 / 10) << run.output;
  auto routes = Routes(r);
  EXPECT_GT(routes["cloud/cn-east-1"], 0);
  EXPECT_GT(routes["local-fallback"], 0) << run.output;

  // After the change every new request obeys the narrow policy: checked against
  // it, and eu-west-1 (allowed before, up, its stream open) receives nothing more.
  const int64_t to_eu_west = ReceivedCount(t, "eu-west-1-a");
  EXPECT_GT(to_eu_west, 0);
  LoadRun after = RunLoad(t.dir(), "after", kWorkload,
                          {target, "--policy=" + policy_dir + "/narrow.textproto", "--mode=open",
                           "--rps=150", "--requests=200", "--duration=0", "--timeout=10s"});
  ASSERT_EQ(after.exit_code, 0) << after.output;
  EXPECT_EQ(after.report.policy_version(), "narrow");
  EXPECT_EQ(after.report.residency_violations(), 0) << after.output;
  EXPECT_EQ(after.report.ok(), 200) << after.output;
  auto after_routes = Routes(after.report);
  EXPECT_EQ(after_routes["cloud/cn-north-1"] + after_routes["cloud/eu-west-1"] +
                after_routes["cloud/eu-central-1"],
            0);
  EXPECT_GT(after_routes["cloud/cn-east-1"], 0);
  EXPECT_GT(after_routes["cloud/us-east-1"], 0);
  EXPECT_GT(after_routes["local-fallback"], 0);
  EXPECT_EQ(ReceivedCount(t, "eu-west-1-a"), to_eu_west);
}

}  // namespace
}  // namespace hr::testing
