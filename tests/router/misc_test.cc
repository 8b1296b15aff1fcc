// Complexity score, request validation, UTF-8 helpers and backend health.
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "router/backend_health.h"
#include "router/complexity.h"
#include "router/request_validation.h"
#include "util/utf8.h"

namespace hr::router {
namespace {

TEST(ComplexityTest, MultiStepMathScoresAboveAGreeting) {
  double easy = HeuristicComplexityScore("Hi! How are you?");
  double hard = HeuristicComplexityScore(
      "Solve step by step: if 3x + 7 = 22, what is x? Then prove it.");
  double zh_hard = HeuristicComplexityScore("请一步一步计算：如果 3x + 7 = 22，x 等于多少？然后证明。");
  EXPECT_LT(easy, 0.3);
  EXPECT_GT(hard, 0.7);
  EXPECT_GT(zh_hard, 0.7);
  EXPECT_GE(easy, 0.0);
  EXPECT_LE(hard, 1.0);
}

TEST(ComplexityTest, ChineseMarkersCountLikeTheirEnglishCounterparts) {
  const std::vector<std::pair<const char*, const char*>> pairs = {
      {"step by step", "一步一步"}, {"step by step", "逐步"},
      {"how many", "多少"},         {"prove", "证明"},
      {"justify", "论证"},          {"evaluate", "评估"},
      {"optimize", "优化"},         {"algorithm", "算法"},
      {"calculate", "计算"}};
  for (const auto& [en, zh] : pairs) {
    EXPECT_EQ(ExtractComplexityFeatures(en).multi_step_markers, 1) << en;
    EXPECT_EQ(ExtractComplexityFeatures(zh).multi_step_markers, 1) << zh;
  }
  // Traditional characters count as the simplified ones do.
  for (const char* zh_hant :
       {"證明", "推導", "計算", "為什麼", "比較", "步驟", "然後", "最後", "論證", "評估", "優化"}) {
    EXPECT_EQ(ExtractComplexityFeatures(zh_hant).multi_step_markers, 1) << zh_hant;
  }
  // The same word problem, asked in each language, goes the same way.
  const double en = HeuristicComplexityScore(
      "A farm has 35 chickens and rabbits with 94 legs in all. How many chickens and how "
      "many rabbits are there? Calculate step by step.");
  const double zh = HeuristicComplexityScore(
      "一个农场有鸡和兔共35只，脚共有94只。鸡和兔各有多少只？请一步一步计算。");
  EXPECT_GT(en, 0.5);
  EXPECT_GT(zh, 0.5);
}

TEST(ComplexityTest, JapaneseAndKoreanMarkersCountLikeTheirEnglishCounterparts) {
  const std::vector<std::pair<const char*, const char*>> ja = {
      {"step by step", "段階的に"}, {"prove", "証明して"},  {"calculate", "計算して"},
      {"solve", "解いて"},          {"how many", "いくつ"}, {"how many", "何匹"},
      {"evaluate", "評価して"},     {"optimize", "最適化"}, {"algorithm", "アルゴリズム"}};
  const std::vector<std::pair<const char*, const char*>> ko = {
      {"step by step", "단계별로"}, {"prove", "증명하세요"},  {"calculate", "계산하세요"},
      {"solve", "풀어 보세요"},     {"how many", "몇 마리"},  {"evaluate", "평가하세요"},
      {"optimize", "최적화"},       {"algorithm", "알고리즘"}};
  for (const auto& pairs : {ja, ko}) {
    for (const auto& [en, word] : pairs) {
      EXPECT_EQ(ExtractComplexityFeatures(en).multi_step_markers, 1) << en;
      EXPECT_EQ(ExtractComplexityFeatures(word).multi_step_markers, 1) << word;
    }
  }
  EXPECT_EQ(ExtractComplexityFeatures("こんにちは、お元気ですか").multi_step_markers, 0);
  EXPECT_EQ(ExtractComplexityFeatures("안녕하세요, 잘 지내세요?").multi_step_markers, 0);
  // The chicken-and-rabbit problem of the Chinese test goes the same way in Japanese and
  // Korean; a greeting stays low.
  const double ja_hard = HeuristicComplexityScore(
      "農場に鶏とウサギが合わせて35匹いて、足は全部で94本です。鶏とウサギはそれぞれ何匹ですか？"
      "段階的に計算してください。");
  const double ko_hard = HeuristicComplexityScore(
      "농장에 닭과 토끼가 모두 35마리 있고 다리는 모두 94개입니다. 닭과 토끼는 각각 몇 "
      "마리입니까? 단계별로 계산하세요.");
  EXPECT_GT(ja_hard, 0.5);
  EXPECT_GT(ko_hard, 0.5);
  EXPECT_LT(HeuristicComplexityScore("こんにちは、お元気ですか？"), 0.3);
  EXPECT_LT(HeuristicComplexityScore("안녕하세요, 잘 지내세요?"), 0.3);
}

TEST(ComplexityTest, ACjkCharacterOrHangulSyllableIsATokenAndFourAsciiBytesAreOne) {
  EXPECT_DOUBLE_EQ(ExtractComplexityFeatures("你好世界").approx_tokens, 4);
  EXPECT_DOUBLE_EQ(ExtractComplexityFeatures("こんにちは").approx_tokens, 5);
  EXPECT_DOUBLE_EQ(ExtractComplexityFeatures("안녕하세요").approx_tokens, 5);
  EXPECT_DOUBLE_EQ(ExtractComplexityFeatures("abcdefgh").approx_tokens, 2);
  EXPECT_DOUBLE_EQ(ExtractComplexityFeatures("é").approx_tokens, 0);
}

TEST(ComplexityTest, FeaturesCountWhatTheySay) {
  ComplexityFeatures f = ExtractComplexityFeatures("Why? 为什么？ 1+1=2");
  EXPECT_EQ(f.questions, 2);
  EXPECT_EQ(f.math_markers, 2);
  EXPECT_GE(f.multi_step_markers, 1);
  EXPECT_GT(f.digit_share, 0.0);
}

v1::GenerateRequest Valid() {
  v1::GenerateRequest r;
  r.set_locale("de-DE");
  auto* m = r.add_messages();
  m->set_role("user");
  m->set_content("Hallo");
  return r;
}

std::string ErrorOf(const v1::GenerateRequest& r, RequestLimits limits = {}) {
  auto s = ValidateGenerateRequest(r, limits);
  if (s.ok()) return "OK";
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.status().message());
}

TEST(ValidateTest, AcceptsAValidRequest) { EXPECT_EQ(ErrorOf(Valid()), "OK"); }

TEST(ValidateTest, NamesWhatIsWrong) {
  auto r = Valid();
  r.set_locale("de_");
  EXPECT_NE(ErrorOf(r).find("locale"), std::string::npos);
  r = Valid();
  r.clear_messages();
  EXPECT_EQ(ErrorOf(r), "messages: at least one message is required");
  r = Valid();
  r.mutable_messages(0)->set_content(std::string("ok\xff", 3));
  EXPECT_EQ(ErrorOf(r), "messages[0].content: not valid UTF-8 at byte 2");
  r = Valid();
  r.mutable_messages(0)->set_content(std::string("ab\0cd", 5));
  EXPECT_EQ(ErrorOf(r), "messages[0].content: a NUL character at byte 2");
  r = Valid();
  r.mutable_messages(0)->set_content(std::string(100, 'a'));
  RequestLimits small;
  small.max_prompt_bytes = 10;
  EXPECT_EQ(ErrorOf(r, small), "messages: the prompt is 100 bytes; the limit is 10");
  r = Valid();
  r.mutable_messages(0)->set_role("robot");
  EXPECT_EQ(ErrorOf(r), "messages[0].role: 'robot' is not one of system, user, assistant");
  // What the app wrote comes back escaped and cut short: it cannot break a log line.
  r.mutable_messages(0)->set_role("x\ny" + std::string(100, 'z'));
  EXPECT_EQ(ErrorOf(r), "messages[0].role: 'x\\ny" + std::string(29, 'z') +
                            "...' is not one of system, user, assistant");
  r = Valid();
  r.mutable_messages(0)->set_role("system");
  EXPECT_EQ(ErrorOf(r), "messages: no message has role 'user'");
  // A user message with no text, next to a system message that has some.
  auto* user = r.add_messages();
  user->set_role("user");
  user->set_content(" \t\n");
  EXPECT_EQ(ErrorOf(r), "messages: the user's messages hold no text");
  user->set_content("?");
  EXPECT_EQ(ErrorOf(r), "OK");
  r = Valid();
  r.mutable_options()->set_temperature(3);
  EXPECT_NE(ErrorOf(r).find("options.temperature"), std::string::npos);
  // proto3 keeps an enum number it has no name for; the router must not guess.
  r = Valid();
  r.set_hint(static_cast<v1::RouteHint>(7));
  EXPECT_EQ(ErrorOf(r),
            "hint: 7 is not a RouteHint (one of ROUTE_HINT_UNSPECIFIED, PREFER_LOCAL, "
            "PREFER_CLOUD)");
  r.set_hint(v1::PREFER_CLOUD);
  EXPECT_EQ(ErrorOf(r), "OK");
}

TEST(Utf8Test, FindsTheFirstInvalidByte) {
  EXPECT_EQ(util::FindInvalidUtf8("héllo 你好 😀"), absl::string_view::npos);
  EXPECT_EQ(util::FindInvalidUtf8("ab\xc0\xaf"), 2u);          // overlong
  EXPECT_EQ(util::FindInvalidUtf8("a\xed\xa0\x80"), 1u);       // surrogate
  EXPECT_EQ(util::FindInvalidUtf8("a\xf4\x90\x80\x80"), 1u);   // above U+10FFFF
  EXPECT_EQ(util::FindInvalidUtf8("你\xe5\xa5"), 3u);           // truncated
}

TEST(Utf8Test, CompletePrefixStopsBeforeAPartialCharacter) {
  std::string s = "a你";
  EXPECT_EQ(util::CompleteUtf8Prefix(s), s.size());
  EXPECT_EQ(util::CompleteUtf8Prefix(s.substr(0, 3)), 1u);
  EXPECT_EQ(util::CompleteUtf8Prefix(""), 0u);
}

std::vector<v1::Backend> Backends() {
  std::vector<v1::Backend> out(3);
  for (int i = 0; i < 3; ++i) out[i].set_name("b" + std::to_string(i));
  return out;
}

TEST(BackendHealthTest, EjectsAfterConsecutiveFailuresAndRecovers) {
  FakeClock clock;
  BackendHealth h({/*consecutive_failures=*/2, absl::Seconds(5), absl::Seconds(60)}, &clock);
  h.RecordFailure("b0");
  EXPECT_FALSE(h.IsEjected("b0"));
  h.RecordFailure("b0");
  EXPECT_TRUE(h.IsEjected("b0"));
  clock.Advance(absl::Seconds(6));
  EXPECT_FALSE(h.IsEjected("b0"));
  h.RecordFailure("b0");
  h.RecordFailure("b0");  // second ejection lasts twice as long
  clock.Advance(absl::Seconds(6));
  EXPECT_TRUE(h.IsEjected("b0"));
  clock.Advance(absl::Seconds(5));
  EXPECT_FALSE(h.IsEjected("b0"));
}

TEST(BackendHealthTest, OrderPutsHealthyFirstAndNeverAddsBackends) {
  FakeClock clock;
  BackendHealth h({1, absl::Seconds(5), absl::Seconds(60)}, &clock);
  auto backends = Backends();
  std::vector<const v1::Backend*> candidates = {&backends[0], &backends[1]};
  h.RecordFailure("b0");
  for (int i = 0; i < 4; ++i) {
    auto order = h.Order(candidates);
    ASSERT_EQ(order.size(), 2u);
    EXPECT_EQ(order[0]->name(), "b1");
    EXPECT_EQ(order[1]->name(), "b0");  // still tried, last
  }
  auto down = h.Order(candidates, [](const v1::Backend& b) { return b.name() == "b1"; });
  EXPECT_EQ(down.size(), 2u);
}

TEST(BackendHealthTest, OrderRotatesAmongHealthyBackends) {
  BackendHealth h({});
  auto backends = Backends();
  std::vector<const v1::Backend*> all = {&backends[0], &backends[1], &backends[2]};
  std::set<std::string> firsts;
  for (int i = 0; i < 3; ++i) firsts.insert(h.Order(all)[0]->name());
  EXPECT_EQ(firsts.size(), 3u);
}

}  // namespace
}  // namespace hr::router
