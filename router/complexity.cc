#include "absl/strings/string_view.h"
#include "router/complexity.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "re2/re2.h"
#include "router/text_features.h"

namespace hr::router {
namespace {

// The English words and their Chinese counterparts: step by step 一步一步 逐步,
// prove 证明, derive 推导, (explain) why 为什么, justify 论证, calculate 计算,
// solve 求解, how many or much 多少, compare 比较, analyse 分析, evaluate 评估,
// optimise 优化, algorithm 算法, steps 步骤, first 首先, then 然后, finally 最后;
// in traditional characters too where they differ (證明, 計算, 為什麼 ...).
// Japanese: ステップ 段階的 順を追って 証明 導出 なぜ 解い/解き/解け いくつ いくら
// 何個 何人 何匹 ... 評価 最適化 アルゴリズム 手順 まず 次に (計算 比較 分析 最後 as above).
// Korean: 단계별 차근차근 증명 유도하 계산 왜 풀어 풀이 몇 얼마 비교 분석 평가 최적화
// 알고리즘 먼저 그다음 다음으로 마지막으로. Both write words without spaces around
// them, so like Chinese they match anywhere.
const RE2& MultiStepMarkers() {
  static const RE2* re = new RE2(
      R"((?i)\b(?:step[- ]by[- ]step|prove|proof|derive|explain why|justify|calculate|compute|solve|how many|how much|compare|analy[sz]e|evaluate|optimi[sz]e|implement|algorithm|first,|then,|finally,)\b|证明|推导|计算|为什么|分析|比较|求解|步骤|首先|然后|最后|一步一步|逐步|多少|论证|评估|优化|算法|證明|推導|計算|為什麼|比較|步驟|然後|最後|論證|評估|優化|ステップ|段階的|順を追って|証明|導出|なぜ|解[いきけ]|いくつ|いくら|何[個人匹本枚回台冊歳倍]|評価|最適化|アルゴリズム|手順|まず|次に|단계별|차근차근|증명|유도하|계산|왜|풀어|풀이|몇|얼마|비교|분석|평가|최적화|알고리즘|먼저|그다음|다음으로|마지막으로)");
  return *re;
}

const RE2& CodeMarkers() {
  static const RE2* re = new RE2(
      R"(```|#include|\bdef |\bclass |\breturn\b|\bfunction\b|=>|->|==|!=|\{|\}|;\s*$|\bSELECT\b|\bimport )");
  return *re;
}

// The score stops growing at this many markers of each kind (see
// HeuristicComplexityScore), so counting stops there too.
constexpr int kMaxCodeMarkers = 8, kMaxMultiStepMarkers = 3;

int CountMatches(const RE2& re, absl::string_view text, int limit) {
  re2::StringPiece input(text.data(), text.size());
  int n = 0;
  while (n < limit && RE2::FindAndConsume(&input, re)) ++n;
  return n;
}

}  // namespace

ComplexityFeatures ExtractComplexityFeatures(absl::string_view prompt) {
  ComplexityFeatures f;
  int non_space = 0, digits = 0, ascii_bytes = 0, cjk = 0;
  for (size_t i = 0; i < prompt.size(); ++i) {
    unsigned char c = prompt[i];
    if (c < 0x80) {
      ++ascii_bytes;
      if (absl::ascii_isspace(c)) continue;
      ++non_space;
      if (absl::ascii_isdigit(c)) ++digits;
      if (IsMathSymbol(c)) ++f.math_markers;
      if (c == '?') ++f.questions;
    } else if (c >= 0xE3 && c <= 0xE9 && i + 2 < prompt.size()) {
      ++non_space;
      ++cjk;  // U+3000..U+9FFF: CJK characters and punctuation
      i += 2;
    } else {  // another multi-byte character, taken whole
      ++non_space;
      uint32_t cp;
      i += DecodeUtf8(prompt, i, &cp) - 1;
      if (cp >= 0xAC00 && cp <= 0xD7AF) ++cjk;  // a Korean syllable, a token like a CJK one
      if (IsMathSymbol(cp)) ++f.math_markers;
      if (cp == 0xFF1F) ++f.questions;  // ？
    }
  }
  f.approx_tokens = ascii_bytes / 4.0 + cjk;
  f.digit_share = non_space == 0 ? 0 : static_cast<double>(digits) / non_space;
  f.code_markers = CountMatches(CodeMarkers(), prompt, kMaxCodeMarkers);
  f.multi_step_markers = CountMatches(MultiStepMarkers(), prompt, kMaxMultiStepMarkers);
  return f;
}

double HeuristicComplexityScore(const ComplexityFeatures& f) {
  double z = -2.2 + 0.9 * std::log1p(f.approx_tokens / 40.0) + 2.5 * f.digit_share +
             0.35 * std::min(f.math_markers, 8) + 0.25 * std::min(f.code_markers, kMaxCodeMarkers) +
             0.8 * std::min(f.multi_step_markers, kMaxMultiStepMarkers) +
             0.2 * std::min(f.questions, 3);
  return 1.0 / (1.0 + std::exp(-z));
}

double HeuristicComplexityScore(absl::string_view prompt) {
  return HeuristicComplexityScore(ExtractComplexityFeatures(prompt));
}

}  // namespace hr::router
