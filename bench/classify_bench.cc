// The cost of classifying one prompt, as hr-device does it: detectors (RE2 with
// checksums), topic keywords, features and the learned complexity model.
//   build/bin/classify_bench
#include <string>

#include "benchmark/benchmark.h"
#include "router/classifier.h"
#include "router/complexity_model.h"
#include "router/decision.h"

namespace {

using hr::router::Classifier;
using hr::router::ComplexityModel;

const ComplexityModel* Model() {
  static const ComplexityModel* model = [] {
    auto m = ComplexityModel::Load(HR_SOURCE_DIR "/models/complexity.pb");
    if (!m.ok()) std::abort();
    return m->release();
  }();
  return model;
}

// The prompts' languages: English, Chinese, and Chinese with its numbers typed in
// full width ("４８", as input methods in full-width mode type them), which the
// detectors read through a mapped copy of the text.
enum Language { kEnglish = 0, kChinese = 1, kChineseFullWidth = 2 };
const char* LanguageLabel(int language) {
  return language == kEnglish ? "en" : language == kChinese ? "zh" : "zh-fullwidth";
}

// Realistic text of about `bytes` bytes: a repeated paragraph with a number, an
// e-mail address and a question in it.
std::string Prompt(int language, size_t bytes) {
  const std::string en =
      "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
      "clips in May. Write to natalia@example.com if unsure. How many clips did she sell? ";
  const std::string zh = "小明有48个苹果，他把一半分给了朋友，然后又买了12个。请问他现在有多少个苹果？请一步一步计算。";
  const std::string zh_wide =
      "小明有４８个苹果，他把一半分给了朋友，然后又买了１２个。请问他现在有多少个苹果？请一步一步计"
      "算。";
  const std::string& unit = language == kEnglish ? en : language == kChinese ? zh : zh_wide;
  std::string out;
  while (out.size() + unit.size() <= bytes) out += unit;
  // Fill up to the size on a character boundary.
  size_t cut = bytes - out.size();
  while (cut > 0 && (static_cast<unsigned char>(unit[cut]) & 0xC0) == 0x80) --cut;
  out += unit.substr(0, cut);
  return out;
}

void BM_Classify(benchmark::State& state) {
  const std::string prompt = Prompt(state.range(1), state.range(0));
  Classifier classifier(Model());
  for (auto _ : state) {
    auto c = classifier.Classify({{"user", prompt}});
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(state.iterations() * prompt.size());
  state.SetLabel(LanguageLabel(state.range(1)));
}
BENCHMARK(BM_Classify)
    ->ArgNames({"bytes", "language"})
    ->ArgsProduct({{100, 1024, 16 * 1024}, {kEnglish, kChinese, kChineseFullWidth}});

void BM_DetectorsOnly(benchmark::State& state) {
  const std::string prompt = Prompt(state.range(1), state.range(0));
  hr::router::Detectors d;
  for (auto _ : state) benchmark::DoNotOptimize(d.FindSpans(prompt));
  state.SetBytesProcessed(state.iterations() * prompt.size());
  state.SetLabel(LanguageLabel(state.range(1)));
}
BENCHMARK(BM_DetectorsOnly)
    ->ArgNames({"bytes", "language"})
    ->ArgsProduct({{1024}, {kEnglish, kChinese, kChineseFullWidth}});

void BM_ModelOnly(benchmark::State& state) {
  const std::string prompt = Prompt(state.range(1), state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(Model()->Score(prompt));
  state.SetBytesProcessed(state.iterations() * prompt.size());
  state.SetLabel(LanguageLabel(state.range(1)));
}
BENCHMARK(BM_ModelOnly)
    ->ArgNames({"bytes", "language"})
    ->ArgsProduct({{1024}, {kEnglish, kChinese}});

}  // namespace

BENCHMARK_MAIN();
