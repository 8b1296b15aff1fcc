#include "router/text_features.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/ascii.h"

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
                   kNumber = 0x5555, kPunct = 0x6666;

// What each ASCII byte is, for the one pass below.
enum ByteClass : uint8_t {
  kLetter = 1,
  kDigit = 2,
  kSpace = 4,
  kPunctuation = 8,  // printable, neither letter nor digit
  kMath = 16,        // = + * / ^ %
};

constexpr std::array<uint8_t, 128> MakeByteClasses() {
  std::array<uint8_t, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      t[c] = kLetter;
    } else if (c >= '0' && c <= '9') {
      t[c] = kDigit;
    } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
      t[c] = kSpace;
    } else if (c > ' ' && c < 127) {
      t[c] = kPunctuation;
    }
  }
  for (int c = 0; c < 128; ++c) {
    if (IsMathSymbol(c)) t[c] |= kMath;
  }
  return t;
}
constexpr std::array<uint8_t, 128> kByteClass = MakeByteClasses();

// Longest punctuation run kept whole; longer runs ("=======") are cut.
constexpr int kMaxPunctRun = 4;

inline bool IsCjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0xAC00 && cp <= 0xD7AF);
}

}  // namespace

uint64_t StableHash(absl::string_view s) { return Fnv(kFnvOffset, s); }

namespace {

// Hashes a run of ASCII letters and digits, lower-cased, eight bytes at a time:
// for these characters lower-casing is setting bit 5 (digits already have it).
inline uint64_t HashWord(const unsigned char* s, size_t len) {
  constexpr uint64_t kLower = 0x2020202020202020ULL;
  uint64_t h = Mix(kWord, len);
  for (; len >= 8; s += 8, len -= 8) {
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v |= uint64_t{s[k]} << (8 * k);
    h = Mix(h, v | kLower);
  }
  if (len > 0) {
    uint64_t v = 0;
    for (size_t k = 0; k < len; ++k) v |= uint64_t{s[k]} << (8 * k);
    h = Mix(h, v | (kLower >> (8 * (8 - len))));
  }
  return h;
}

}  // namespace

void ExtractTextFeatures(absl::string_view prompt, TextFeatures* out) {
  std::vector<uint64_t>& hashes = out->hashes;
  hashes.clear();
  hashes.reserve(prompt.size() / 2 + 8);
  const auto* text = reinterpret_cast<const unsigned char*>(prompt.data());
  const size_t n = prompt.size();
  uint64_t prev_word = 0, prev_cjk = 0;
  int words = 0, word_chars = 0, numbers = 0, letters = 0;  // letters: ASCII ones
  int chars = 0, non_space = 0, digits = 0, cjk_chars = 0, math = 0, questions = 0, lines = 0;

  // Token by token: a word (ASCII letters and digits), a run of ASCII
  // punctuation, a space, or one multi-byte character.
  for (size_t i = 0; i < n;) {
    unsigned char c = text[i];
    if (c >= 0x80) {
      uint32_t cp;
      int len = DecodeUtf8(prompt, i, &cp);
      ++chars;
      ++non_space;
      if (IsCjk(cp)) {
        ++cjk_chars;
        uint64_t h = Mix(kCjk, cp);
        hashes.push_back(h);
        if (prev_cjk != 0) hashes.push_back(Mix(kCjkBigram, Mix(prev_cjk, h)));
        prev_cjk = h;
      } else {
        prev_cjk = 0;
        math += IsMathSymbol(cp);
        questions += cp == 0xFF1F;  // ？
      }
      i += len;
      continue;
    }
    prev_cjk = 0;
    const size_t start = i;
    const uint8_t cls = kByteClass[c];
    if (cls & (kLetter | kDigit)) {
      int word_digits = 0;
      do {
        word_digits += (kByteClass[text[i]] & kDigit) != 0;
        ++i;
      } while (i < n && text[i] < 0x80 && (kByteClass[text[i]] & (kLetter | kDigit)));
      const int len = static_cast<int>(i - start);
      digits += word_digits;
      letters += len - word_digits;
      uint64_t h;
      if (word_digits == len) {
        // Numbers by length class only: "7" and "9" are the same feature.
        h = Mix(kNumber, std::min(len, 9));
        ++numbers;
      } else {
        h = HashWord(text + start, len);
        ++words;
        word_chars += len;
      }
      hashes.push_back(h);
      if (prev_word != 0) hashes.push_back(Mix(kWordBigram, Mix(prev_word, h)));
      prev_word = h;
      chars += len;
      non_space += len;
    } else if (cls & kPunctuation) {
      uint64_t h = kPunct;
      do {
        if (i - start < kMaxPunctRun) h = Mix(h, text[i]);
        math += (kByteClass[text[i]] & kMath) != 0;
        questions += text[i] == '?';
        ++i;
      } while (i < n && text[i] < 0x80 && (kByteClass[text[i]] & kPunctuation));
      hashes.push_back(h);
      chars += i - start;
      non_space += i - start;
    } else {
      ++chars;
      lines += c == '\n';
      ++i;
    }
  }

  auto squash = [](double x, double scale) { return static_cast<float>(std::min(x / scale, 1.0)); };
  out->dense = {static_cast<float>(std::log1p(n / 100.0) / 4.0),
                non_space == 0 ? 0.0f : static_cast<float>(digits) / non_space,
                squash(math, 8),
                squash(questions, 4),
                chars == 0 ? 0.0f : static_cast<float>(cjk_chars) / chars,
                static_cast<float>(std::log1p(numbers) / 3.0),
                squash(lines, 16),
                words == 0 ? 0.0f : squash(static_cast<double>(word_chars) / words, 10)};
  out->cjk_share_of_letters =
      cjk_chars == 0 ? 0.0f : static_cast<float>(cjk_chars) / (cjk_chars + letters);
}

}  // namespace hr::router
