#include "router/text_features.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "router/complexity.h"

namespace hr::router {
namespace {

// FNV-1a, 64-bit: stable across processes and platforms, unlike absl::Hash, so
// that a weights file means the same everywhere.
constexpr uint64_t kFnvOffset = 1469598103934665603ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;

inline uint64_t Fnv(uint64_t h, absl::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

inline uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t h = a ^ (b + 0x9E3779B97F4A7C15ULL + (a << 6) + (a >> 2));
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 29;
  return h;
}

// Namespaces, so that a word and a character never share a hash.
constexpr uint64_t kWord = 0x1111, kWordBigram = 0x2222, kCjk = 0x3333, kCjkBigram = 0x4444,
                   kNumber = 0x5555;

// Decodes one UTF-8 character at s[i] (assumed valid); returns its length.
inline int DecodeUtf8(absl::string_view s, size_t i, uint32_t* cp) {
  unsigned char c = s[i];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int len = c >= 0xF0 ? 4 : (c >= 0xE0 ? 3 : 2);
  if (i + len > s.size()) {
    *cp = 0xFFFD;
    return 1;
  }
  uint32_t v = c & (0x3F >> (len - 1));
  for (int k = 1; k < len; ++k) v = (v << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *cp = v;
  return len;
}

inline bool IsCjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0xAC00 && cp <= 0xD7AF);
}

}  // namespace

uint64_t StableHash(absl::string_view s) { return Fnv(kFnvOffset, s); }

void ExtractTextFeatures(absl::string_view prompt, TextFeatures* out) {
  out->hashes.clear();
  out->hashes.reserve(prompt.size() / 2 + 8);
  char word[32];
  size_t word_len = 0;
  bool word_is_number = true;
  uint64_t prev_word = 0;
  uint64_t prev_cjk = 0;
  int numbers = 0, cjk_chars = 0, chars = 0;

  auto end_word = [&]() {
    if (word_len == 0) return;
    uint64_t h;
    if (word_is_number) {
      // Numbers by length class only: "7" and "9" are the same feature.
      char shape[2] = {'#', static_cast<char>('0' + std::min<size_t>(word_len, 9))};
      h = Mix(kNumber, Fnv(kFnvOffset, absl::string_view(shape, 2)));
      ++numbers;
    } else {
      h = Mix(kWord, Fnv(kFnvOffset, absl::string_view(word, word_len)));
    }
    out->hashes.push_back(h);
    if (prev_word != 0) out->hashes.push_back(Mix(kWordBigram, Mix(prev_word, h)));
    prev_word = h;
    word_len = 0;
    word_is_number = true;
  };

  for (size_t i = 0; i < prompt.size();) {
    unsigned char c = prompt[i];
    if (c < 0x80) {
      ++chars;
      if (absl::ascii_isalnum(c)) {
        if (word_len < sizeof(word)) word[word_len++] = absl::ascii_tolower(c);
        word_is_number = word_is_number && absl::ascii_isdigit(c);
      } else {
        end_word();
      }
      prev_cjk = 0;
      ++i;
      continue;
    }
    end_word();
    uint32_t cp;
    int len = DecodeUtf8(prompt, i, &cp);
    ++chars;
    if (IsCjk(cp)) {
      ++cjk_chars;
      uint64_t h = Mix(kCjk, cp);
      out->hashes.push_back(h);
      if (prev_cjk != 0) out->hashes.push_back(Mix(kCjkBigram, Mix(prev_cjk, h)));
      prev_cjk = h;
    } else {
      prev_cjk = 0;
    }
    i += len;
  }
  end_word();

  ComplexityFeatures f = ExtractComplexityFeatures(prompt);
  auto squash = [](double x, double scale) { return static_cast<float>(std::min(x / scale, 1.0)); };
  out->dense = {static_cast<float>(std::log1p(prompt.size() / 100.0) / 4.0),
                static_cast<float>(f.digit_share),
                squash(f.math_markers, 8),
                squash(f.code_markers, 8),
                squash(f.multi_step_markers, 4),
                squash(f.questions, 4),
                chars == 0 ? 0.0f : static_cast<float>(cjk_chars) / chars,
                static_cast<float>(std::log1p(numbers) / 3.0)};
}

}  // namespace hr::router
