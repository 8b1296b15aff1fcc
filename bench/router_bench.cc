// What the router itself costs per request, without the network:
//   - BM_Explain: validation, classification and the policy decision;
//   - BM_GenerateCloud: the whole request through DeviceRouter::Generate with an
//     in-process cloud client that answers at once (decision, redaction, backend
//     choice, claim, the answer's messages), i.e. everything but gRPC;
//   - BM_RedactRestore: redacting a prompt and restoring placeholders in a streamed
//     answer, per answer, against BM_StreamPlain (the same stream, no restorer).
//   build/bin/router_bench
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "device_stub/device_router.h"
#include "engine/synthetic_engine.h"
#include "policy/residency_policy.h"
#include "router/complexity_model.h"
#include "router/redaction.h"
#include "spdlog/spdlog.h"

namespace {

namespace v1 = ::hybridrouter::v1;
using hr::device::CloudCall;
using hr::device::CloudCallbacks;
using hr::device::CloudClient;
using hr::device::ResponseStream;

std::shared_ptr<const hr::policy::ResidencyPolicy> Policy() {
  static auto policy = [] {
    const std::string dir = HR_SOURCE_DIR "/deploy/local/";
    auto loaded = hr::policy::LoadResidencyPolicy(dir + "policy.textproto",
                                                  dir + "backends.textproto");
    if (!loaded.ok()) std::abort();
    return *loaded;
  }();
  return policy;
}

const hr::router::ComplexityModel* Model() {
  static const hr::router::ComplexityModel* model = [] {
    auto m = hr::router::ComplexityModel::Load(HR_SOURCE_DIR "/models/complexity.pb");
    if (!m.ok()) std::abort();
    return m->release();
  }();
  return model;
}

v1::GenerateRequest Request(const std::string& locale, const std::string& prompt) {
  v1::GenerateRequest r;
  r.set_request_id("bench-1");
  r.set_locale(locale);
  r.set_hint(v1::PREFER_CLOUD);
  r.set_cloud_consent(true);
  v1::ChatMessage* m = r.add_messages();
  m->set_role("user");
  m->set_content(prompt);
  r.mutable_options()->set_max_tokens(8);
  return r;
}

// The prompts of bench/workloads: short questions, one with an identifier.
const char* kSmall = "What is the capital of France?";
const char* kWithId = "我的身份证号是11010519491231002X，请帮我查一下社保。";

// Answers every call at once, on the caller's thread: start, 8 pieces, done.
class InstantCloud : public CloudClient {
 public:
  class Call : public CloudCall {
   public:
    void Cancel() override {}
  };
  std::shared_ptr<CloudCall> Start(const v1::Backend& backend, const v1::CloudRequest& request,
                                   absl::Time, CloudCallbacks cb) override {
    v1::CloudStart start;
    start.set_region(backend.region());
    cb.on_start(start);
    for (int i = 0; i < 8; ++i) cb.on_text(i == 0 ? "alpha" : " bravo");
    v1::CloudDone done;
    done.set_region(backend.region());
    done.mutable_usage()->set_completion_tokens(8);
    cb.on_done(done, "");
    return std::make_shared<Call>();
  }
  bool IsDown(const v1::Backend&) override { return false; }
};

// Takes the answer's messages as the app's stream would, keeping what a check
// needs: however the router packs the route, the text and done into messages.
class CountingStream : public ResponseStream {
 public:
  bool Send(v1::GenerateResponse r) override {
    routed = routed || r.has_route();
    text += r.chunk().text();
    done = done || r.has_done();
    benchmark::DoNotOptimize(r);
    return true;
  }
  void Finish(const absl::Status& s) override { ok = s.ok(); }
  void OnCancel(std::function<void()>) override {}
  // The whole answer arrived: the route, InstantCloud's text and done, then OK.
  bool Complete() const {
    return ok && routed && done && text == "alpha bravo bravo bravo bravo bravo bravo bravo";
  }
  bool routed = false, done = false, ok = false;
  std::string text;
};

struct RouterFixture {
  RouterFixture()
      : local([] {
          std::vector<std::unique_ptr<hr::engine::Generator>> g;
          g.push_back(hr::engine::NewSyntheticGenerator({}));
          return g;
        }(), 4),
        health(hr::router::OutlierOptions{}),
        router({}, Policy(), &local, &cloud, &health, Model()) {}
  hr::engine::EnginePool local;
  InstantCloud cloud;
  hr::router::BackendHealth health;
  hr::device::DeviceRouter router;
};

void BM_Explain(benchmark::State& state) {
  RouterFixture f;
  const v1::GenerateRequest r = Request(state.range(0) ? "zh-CN" : "en-US",
                                        state.range(0) ? kWithId : kSmall);
  for (auto _ : state) benchmark::DoNotOptimize(f.router.Explain(r));
  state.SetLabel(state.range(0) ? "zh-CN, resident id" : "en-US, short question");
}
BENCHMARK(BM_Explain)->Arg(0)->Arg(1);

void BM_GenerateCloud(benchmark::State& state) {
  RouterFixture f;
  const v1::GenerateRequest r = Request(state.range(0) ? "zh-CN" : "en-US",
                                        state.range(0) ? kWithId : kSmall);
  spdlog::set_level(spdlog::level::warn);  // as in the load benchmarks
  for (auto _ : state) {
    auto stream = std::make_shared<CountingStream>();
    f.router.Generate(r, absl::InfiniteFuture(), stream);
    if (!stream->Complete()) {
      state.SkipWithError("the request did not complete");
      break;
    }
  }
  state.SetLabel(state.range(0) ? "zh-CN, resident id redacted" : "en-US, short question");
}
BENCHMARK(BM_GenerateCloud)->Arg(0)->Arg(1);

// A streamed answer of `tokens` pieces that mentions the placeholder twice.
std::vector<std::string> Answer(int tokens) {
  std::vector<std::string> pieces;
  for (int i = 0; i < tokens; ++i) {
    if (i == tokens / 3 || i == 2 * tokens / 3) {
      pieces.push_back(" [CN_RESI");  // a placeholder split across pieces
      pieces.push_back("DENT_ID_1]");
    } else {
      pieces.push_back(" word");
    }
  }
  return pieces;
}

void BM_RedactRestore(benchmark::State& state) {
  hr::router::Detectors detectors;
  const std::string prompt = kWithId;
  const std::vector<std::vector<hr::router::Span>> spans = {detectors.FindSpans(prompt)};
  std::array<bool, hr::policy::kNumCategories> redact{};
  redact[v1::CN_RESIDENT_ID] = true;
  const std::vector<std::string> answer = Answer(static_cast<int>(state.range(0)));
  size_t out_bytes = 0;
  for (auto _ : state) {
    hr::router::Redacted r = hr::router::Redact({prompt}, spans, redact);
    hr::router::Restorer restorer(std::move(r.mapping));
    for (const std::string& piece : answer) out_bytes += restorer.Feed(piece).size();
    out_bytes += restorer.Flush().size();
  }
  benchmark::DoNotOptimize(out_bytes);
  state.counters["per_token"] = benchmark::Counter(
      static_cast<double>(state.iterations() * answer.size()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RedactRestore)->Arg(8)->Arg(128)->Arg(1024);

// The same answer copied out without a restorer: the baseline of BM_RedactRestore.
void BM_StreamPlain(benchmark::State& state) {
  const std::vector<std::string> answer = Answer(static_cast<int>(state.range(0)));
  size_t out_bytes = 0;
  for (auto _ : state) {
    for (const std::string& piece : answer) out_bytes += std::string(piece).size();
  }
  benchmark::DoNotOptimize(out_bytes);
}
BENCHMARK(BM_StreamPlain)->Arg(8)->Arg(128)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
