// Backends marked `shared_stream`: hr-device sends their requests over one
// CloudInference.GenerateStream. Real hr-device and hr-cloud processes on loopback.
#include <signal.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace hr::testing {
namespace {

BackendSpec Streamed(const std::string& name, const std::string& region,
                     std::vector<std::string> flags = {}) {
  BackendSpec b{name, region};
  b.shared_stream = true;
  b.flags = std::move(flags);
  return b;
}

TEST(SharedStreamTest, ManyConcurrentRequestsEachGetTheirOwnAnswer) {
  // Room for all of them at once: what arrives together leaves together.
  Topology t({Streamed("us-east-1-a", "us-east-1", {"--slots=8", "--max_queue=64"})});
  constexpr int kRequests = 48;
  std::vector<Answer> answers(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&t, &answers, i] {
      answers[i] = Generate(t.device(), Request("en-US", absl::StrCat("please repeat number ", i),
                                                true, v1::PREFER_CLOUD, 64));
    });
  }
  for (std::thread& th : threads) th.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(answers[i].status.ok()) << i << ": " << answers[i].status.error_message();
    EXPECT_EQ(answers[i].route.target(), v1::CLOUD);
    EXPECT_EQ(answers[i].route.region(), "us-east-1");
    // The backend echoes each request: an answer that went to the wrong caller shows.
    EXPECT_EQ(answers[i].text, absl::StrCat("please repeat number ", i));
  }
  const std::string backend_log = ReadFile(t.dir() + "/us-east-1-a.log");
  EXPECT_EQ(CountLines(backend_log, "via=stream"), kRequests) << backend_log;
  EXPECT_EQ(CountLines(backend_log, "via=call"), 0) << backend_log;
  // SIGTERM: the stream is closed and hr-device exits cleanly.
  ASSERT_EQ(kill(t.device_process().pid(), SIGTERM), 0);
  EXPECT_EQ(t.device_process().WaitExit(absl::Seconds(30)), 0);
  EXPECT_FALSE(absl::StrContains(ReadFile(t.dir() + "/device.log"), "still"));
}

// An hr-cloud for driving GenerateStream directly: synthetic, echoing its
// prompt at 40 tokens a second, 4 slots.
CloudProcess EchoBackend() {
  return CloudProcess("eu-central-1",
                      {"--synthetic_tokens_per_second=40", "--synthetic_echo", "--slots=4"});
}

// Call `id` of a stream, claiming `region`. The backend echoes: more than 100
// `max_tokens` asks for a long answer (about 6 s at 40 tokens/s), 0 sends no
// messages at all.
v1::CloudStreamCall StreamCall(uint64_t id, const std::string& region, int max_tokens,
                               int64_t timeout_micros) {
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "word ";
  v1::CloudStreamCall c;
  c.set_call_id(id);
  c.mutable_request()->set_request_id(absl::StrCat("r", id));
  c.mutable_request()->mutable_claim()->add_allowed_regions(region);
  if (max_tokens > 0) {
    auto* m = c.mutable_request()->add_messages();
    m->set_role("user");
    m->set_content(max_tokens > 100 ? long_text : "one two three");
    c.mutable_request()->mutable_options()->set_max_tokens(max_tokens);
  }
  c.set_timeout_micros(timeout_micros);
  return c;
}

// The backend's side, driven directly: each call has its own checks, status,
// deadline and cancellation, and none of them ends the stream.
TEST(SharedStreamTest, BackendEndsEachCallOnItsOwn) {
  CloudProcess backend = EchoBackend();
  v1::CloudInference::Stub* stub = backend.stub();
  grpc::ClientContext ctx;
  auto stream = stub->GenerateStream(&ctx);
  v1::CloudStreamRequests first;
  *first.add_calls() = StreamCall(1, "eu-west-1", 3, 0);            // not this backend's region
  *first.add_calls() = StreamCall(2, "eu-central-1", 50, 0);        // served
  *first.add_calls() = StreamCall(3, "eu-central-1", 0, 0);         // no messages
  *first.add_calls() = StreamCall(4, "eu-central-1", 400, 0);       // cancelled below
  *first.add_calls() = StreamCall(5, "eu-central-1", 400, 200000);  // with 0.2 s to go
  ASSERT_TRUE(stream->Write(first));

  std::map<uint64_t, int> codes;  // how each call ended (0: done)
  std::map<uint64_t, std::string> text;
  bool cancel_sent = false;
  v1::CloudStreamChunks in;
  while (codes.size() < 6 && stream->Read(&in)) {
    for (const v1::CloudStreamChunk& c : in.chunks()) {
      if (c.call_id() == 4 && cancel_sent) continue;  // sent before the cancel arrived
      ASSERT_EQ(codes.count(c.call_id()), 0u) << "call " << c.call_id() << " already ended";
      text[c.call_id()] += c.chunk().text();
      if (c.code() != 0) codes[c.call_id()] = c.code();
      if (c.chunk().has_done()) {
        codes[c.call_id()] = 0;
        EXPECT_EQ(c.chunk().done().region(), "eu-central-1");
      }
    }
    if (!cancel_sent && !text[4].empty()) {  // call 4 is running: give it up
      v1::CloudStreamRequests cancel;
      cancel.add_cancel(4);
      *cancel.add_calls() = StreamCall(6, "eu-central-1", 50, 0);
      ASSERT_TRUE(stream->Write(cancel));
      cancel_sent = true;
      codes[4] = -1;  // ends without a chunk that says so
    }
  }
  EXPECT_EQ(codes[1], grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(codes[2], 0);
  EXPECT_EQ(text[2], "one two three");
  EXPECT_EQ(codes[3], grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(codes[5], grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(codes[6], 0);
  // Call 4 stops: the backend logs it cancelled, long before its 6 s.
  EXPECT_TRUE(WaitForLog(backend.log_path(),
                         "served request_id=r4 via=stream client=- "
                         "jurisdiction= device_policy= region=eu-central-1 code=CANCELLED",
                         absl::Seconds(5)))
      << ReadFile(backend.log_path());
  // The caller closes its side; with no call left, the stream ends OK.
  ASSERT_TRUE(stream->WritesDone());
  while (stream->Read(&in)) {
    for (const v1::CloudStreamChunk& c : in.chunks()) EXPECT_EQ(c.call_id(), 4u);
  }
  EXPECT_TRUE(stream->Finish().ok());
}

// A caller that sends a call id again while its call runs could not tell the two
// answers apart: the stream ends INVALID_ARGUMENT, naming the id, and the
// backend stops the work it was doing for it.
TEST(SharedStreamTest, BackendEndsAStreamThatReusesARunningCallsId) {
  CloudProcess backend = EchoBackend();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto stream = backend.stub()->GenerateStream(&ctx);
  v1::CloudStreamRequests first;
  *first.add_calls() = StreamCall(1, "eu-central-1", 400, 0);  // about 6 s
  *first.add_calls() = StreamCall(2, "eu-central-1", 50, 0);   // done at once
  ASSERT_TRUE(stream->Write(first));
  // Call 2 over and call 1 running: an id that ended may be used again, one
  // that runs may not.
  std::map<uint64_t, std::string> text;
  bool two_done = false;
  v1::CloudStreamChunks in;
  while (!(two_done && !text[1].empty()) && stream->Read(&in)) {
    for (const v1::CloudStreamChunk& c : in.chunks()) {
      text[c.call_id()] += c.chunk().text();
      if (c.call_id() == 2) two_done = c.chunk().has_done();
    }
  }
  ASSERT_TRUE(two_done);
  v1::CloudStreamRequests again;
  *again.add_calls() = StreamCall(2, "eu-central-1", 50, 0);
  ASSERT_TRUE(stream->Write(again));
  two_done = false;
  while (!two_done && stream->Read(&in)) {
    for (const v1::CloudStreamChunk& c : in.chunks()) {
      text[c.call_id()] += c.chunk().text();
      if (c.call_id() == 2) two_done = c.chunk().has_done();
    }
  }
  EXPECT_EQ(text[2], "one two threeone two three");
  v1::CloudStreamRequests reused;
  *reused.add_calls() = StreamCall(1, "eu-central-1", 50, 0);
  ASSERT_TRUE(stream->Write(reused));
  const absl::Time sent = absl::Now();
  while (stream->Read(&in)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "call id 1 was sent again while that call was still running");
  EXPECT_LT(absl::Now() - sent, absl::Seconds(4)) << "the stream ran until call 1 was over";
  EXPECT_TRUE(WaitForLog(backend.log_path(),
                         "served request_id=r1 via=stream client=- "
                         "jurisdiction= device_policy= region=eu-central-1 code=CANCELLED",
                         absl::Seconds(5)))
      << ReadFile(backend.log_path());
}

TEST(SharedStreamTest, ABrokenStreamEndsItsCallsAndTheNextGoElsewhere) {
  // Slow answers (20 tokens at 10/s), so a request is still running when its
  // backend dies.
  const std::vector<std::string> slow = {"--synthetic_tokens_per_second=10"};
  Topology t(
      {Streamed("cn-north-1-a", "cn-north-1", slow), Streamed("cn-east-1-a", "cn-east-1", slow)});
  Answer warm = Generate(t.device(), Request("zh-CN", "hi", false, v1::PREFER_CLOUD, 2));
  ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();

  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto reader = t.device()->Generate(
      &ctx, Request("zh-CN",
                    "one two three four five six seven eight nine ten eleven twelve "
                    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty",
                    false, v1::PREFER_CLOUD, 20));
  v1::GenerateResponse r;
  ASSERT_TRUE(reader->Read(&r));  // the route, with the first text
  const std::string first = r.route().backend(),
                    other = first == "cn-north-1-a" ? "cn-east-1-a" : "cn-north-1-a";
  t.backend_process(first).Stop(SIGKILL);
  const absl::Time killed = absl::Now();
  while (reader->Read(&r)) {
  }
  // Text had gone to the app, so no other backend may take over: the request
  // ends UNAVAILABLE when the stream breaks, not at its deadline.
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(15));

  for (int i = 0; i < 3; ++i) {
    Answer a = Generate(t.device(), Request("zh-CN", "hi", false, v1::PREFER_CLOUD, 2));
    ASSERT_TRUE(a.status.ok()) << a.status.error_message();
    EXPECT_EQ(a.route.backend(), other);
  }
}

TEST(SharedStreamTest, DrainingBackendEndsTheStreamAndExitsWithoutWaiting) {
  // The device keeps its stream open; a draining backend must end it once its
  // calls are over, rather than wait out its minute-long drain deadline.
  Topology t({Streamed("cn-north-1-a", "cn-north-1", {"--drain_timeout=60s"}),
              Streamed("cn-east-1-a", "cn-east-1", {"--drain_timeout=60s"})});
  Answer warm = Generate(t.device(), Request("zh-CN", "hi", false, v1::PREFER_CLOUD, 2));
  ASSERT_TRUE(warm.status.ok()) << warm.status.error_message();
  const std::string first = warm.route.backend(),
                    other = first == "cn-north-1-a" ? "cn-east-1-a" : "cn-north-1-a";
  ASSERT_EQ(kill(t.backend_process(first).pid(), SIGTERM), 0);
  EXPECT_EQ(t.backend_process(first).WaitExit(absl::Seconds(30)), 0);
  for (int i = 0; i < 3; ++i) {
    Answer a = Generate(t.device(), Request("zh-CN", "hi", false, v1::PREFER_CLOUD, 2));
    ASSERT_TRUE(a.status.ok()) << a.status.error_message();
    EXPECT_EQ(a.route.backend(), other);
  }
}

// One backend entry whose address resolves to two hr-cloud processes: a stream
// older than --stream_max_age takes no new requests, the next one goes to the
// other address, and the old one closes once its requests are done. Requests
// that arrive while streams are replaced all get their answer.
TEST(SharedStreamTest, OldStreamsGiveWayAndTheNextGoesToTheNextAddress) {
  const std::vector<std::string> debug = {"--log_level=debug"};
  Topology t(
      {Streamed("us-east-1-a", "us-east-1", debug), Streamed("us-east-1-b", "us-east-1", debug)},
      {"--stream_max_age=20ms", "--watch_interval=0"});
  std::ofstream(t.dir() + "/backends.textproto")
      << "backends { name: \"us-east-1\" address: \"ipv4:127.0.0.1:"
      << t.backend_port("us-east-1-a") << ",127.0.0.1:" << t.backend_port("us-east-1-b")
      << "\" region: \"us-east-1\" model_family: \"qwen\" shared_stream: true }\n";
  ASSERT_EQ(kill(t.device_process().pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(t.dir() + "/device.log", "backends=1", absl::Seconds(10)));

  // Four callers at once, each sending one request after another, for long
  // enough that the stream is replaced many times under them.
  constexpr int kCallers = 4, kEach = 40;
  std::vector<std::vector<Answer>> answers(kCallers);
  std::vector<std::thread> threads;
  for (int c = 0; c < kCallers; ++c) {
    threads.emplace_back([&t, &answers, c] {
      for (int i = 0; i < kEach; ++i) {
        answers[c].push_back(
            Generate(t.device(), Request("en-US", absl::StrCat("caller ", c, " number ", i), true,
                                         v1::PREFER_CLOUD, 8)));
        absl::SleepFor(absl::Milliseconds(5));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int c = 0; c < kCallers; ++c) {
    for (int i = 0; i < kEach; ++i) {
      const Answer& a = answers[c][i];
      ASSERT_TRUE(a.status.ok()) << c << "/" << i << ": " << a.status.error_message();
      EXPECT_EQ(a.route.backend(), "us-east-1");
      EXPECT_EQ(a.text, absl::StrCat("caller ", c, " number ", i));
    }
  }
  const std::string a_log = ReadFile(t.dir() + "/us-east-1-a.log"),
                    b_log = ReadFile(t.dir() + "/us-east-1-b.log");
  const int a_served = CountLines(a_log, "via=stream"), b_served = CountLines(b_log, "via=stream");
  EXPECT_EQ(a_served + b_served, kCallers * kEach);
  EXPECT_EQ(CountLines(a_log, "via=call") + CountLines(b_log, "via=call"), 0);
  // Both addresses served: the stream did not stay on the first.
  EXPECT_GT(a_served, 0) << b_log;
  EXPECT_GT(b_served, 0) << a_log;
  // Streams were replaced, and the old ones closed by the device (OK), not cut
  // off: every stream but the one in use has ended.
  const int opened = CountLines(a_log, "stream opened") + CountLines(b_log, "stream opened");
  EXPECT_GE(opened, 4);
  auto all_ended = [&] {
    const std::string a = ReadFile(t.dir() + "/us-east-1-a.log"),
                      b = ReadFile(t.dir() + "/us-east-1-b.log");
    return CountLines(a, "stream ended") + CountLines(b, "stream ended") >= opened - 1;
  };
  EXPECT_TRUE(Eventually(all_ended, absl::Seconds(5), absl::Milliseconds(50))) << a_log << b_log;
  const std::string ends =
      ReadFile(t.dir() + "/us-east-1-a.log") + ReadFile(t.dir() + "/us-east-1-b.log");
  EXPECT_EQ(CountLines(ends, "stream ended"), CountLines(ends, "stream ended client=- code=OK"))
      << ends;
}

// Established TCP connections on this machine to `port` (the client's side),
// over IPv4 or IPv6 (gRPC may reach 127.0.0.1 on an IPv6 socket).
int ConnectionsTo(int port) {
  int n = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const size_t colon = remote.find(':');
      if (colon != std::string::npos && std::stoi(remote.substr(colon + 1), nullptr, 16) == port &&
          state == "01") {
        ++n;
      }
    }
  }
  return n;
}

// A reload that takes a backend out of the file ends hr-device's stream and
// connection to it (no health checks or reconnection attempts go on), after
// the request running on it has its whole answer.
TEST(SharedStreamTest, ABackendTakenOutOfTheFileLosesItsStreamAndConnection) {
  const std::vector<std::string> flags = {"--log_level=debug", "--synthetic_tokens_per_second=20"};
  Topology t(
      {Streamed("us-east-1-a", "us-east-1", flags), Streamed("us-east-1-b", "us-east-1", flags)},
      {"--watch_interval=0"});
  // Lists only backend `name` in hr-device's backends file, and reloads it.
  auto only = [&t](const std::string& name) {
    std::ofstream(t.dir() + "/backends.textproto")
        << "backends { name: \"" << name << "\" address: \"127.0.0.1:" << t.backend_port(name)
        << "\" region: \"us-east-1\" model_family: \"qwen\" shared_stream: true }\n";
    ASSERT_EQ(kill(t.device_process().pid(), SIGHUP), 0);
  };
  only("us-east-1-a");
  ASSERT_TRUE(WaitForLog(t.dir() + "/device.log", "backends=1"));

  // About a second and a half at 20 tokens/s: still running when the file changes.
  const std::string prompt =
      "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
      "fifteen sixteen seventeen eighteen nineteen twenty";
  Answer running;
  std::thread caller([&] {
    running = Generate(t.device(), Request("en-US", prompt, true, v1::PREFER_CLOUD, 64));
  });
  ASSERT_TRUE(WaitForLog(t.dir() + "/us-east-1-a.log", "stream opened"));
  const int port_a = t.backend_port("us-east-1-a");
  EXPECT_GT(ConnectionsTo(port_a), 0);
  only("us-east-1-b");
  EXPECT_TRUE(
      Eventually([&t] { return CountLines(ReadFile(t.dir() + "/device.log"), "backends=1") >= 2; },
                 absl::Seconds(2), absl::Milliseconds(10)));
  // The reload is done and the answer still streams.
  EXPECT_EQ(CountLines(ReadFile(t.dir() + "/us-east-1-a.log"), "via=stream"), 0);
  caller.join();
  ASSERT_TRUE(running.status.ok()) << running.status.error_message();
  EXPECT_EQ(running.route.backend(), "us-east-1-a");
  EXPECT_EQ(running.text, prompt);

  // The stream to us-east-1-a closes (its side first, so OK) and so does the
  // connection; new requests go to us-east-1-b.
  EXPECT_TRUE(
      WaitForLog(t.dir() + "/us-east-1-a.log", "stream ended client=- code=OK", absl::Seconds(10)))
      << ReadFile(t.dir() + "/us-east-1-a.log");
  EXPECT_TRUE(Eventually([port_a] { return ConnectionsTo(port_a) == 0; }, absl::Seconds(5),
                         absl::Milliseconds(50)));
  Answer next = Generate(t.device(), Request("en-US", "hi", true, v1::PREFER_CLOUD, 2));
  ASSERT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(next.route.backend(), "us-east-1-b");
  EXPECT_EQ(ConnectionsTo(port_a), 0);
}

TEST(SharedStreamTest, AppDeadlineStopsTheBackendsCall) {
  Topology t({Streamed("us-east-1-a", "us-east-1", {"--synthetic_tokens_per_second=10"})});
  v1::GenerateRequest request = Request("en-US",
                                        "one two three four five six seven eight nine "
                                        "ten eleven twelve thirteen fourteen fifteen",
                                        true, v1::PREFER_CLOUD, 15);
  Answer a = Generate(t.device(), request, absl::Milliseconds(500));
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The backend stops the call when told (or at the deadline it was given),
  // about a second before its 15 tokens would have ended it.
  EXPECT_TRUE(WaitForLog(t.dir() + "/us-east-1-a.log", "via=stream"));
  const std::string log = ReadFile(t.dir() + "/us-east-1-a.log");
  EXPECT_TRUE(absl::StrContains(log, "code=CANCELLED") ||
              absl::StrContains(log, "code=DEADLINE_EXCEEDED"))
      << log;
  // The stream still serves.
  Answer b = Generate(t.device(), Request("en-US", "hi", true, v1::PREFER_CLOUD, 2));
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(b.text, "hi");
}

}  // namespace
}  // namespace hr::testing
