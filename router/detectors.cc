#include "router/detectors.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "re2/re2.h"
#include "re2/set.h"

namespace hr::router {
namespace {

struct Pattern {
  v1::SensitiveCategory category;
  const RE2* re;
  bool (*valid)(absl::string_view);  // null: the pattern is the whole check
  // Characters that must not touch the match on either side, so that a match is
  // not a piece of a longer number or word.
  bool (*is_glue)(char);
  int strength;  // tie-break on equal-length overlaps: higher wins
  bool after_at = false;  // the e-mail pattern; every other one needs a digit or ':'
};

bool IsDigitGlue(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }
bool IsAlnumGlue(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }
bool IsEmailGlue(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '@' || c == '_';
}
bool IsIpGlue(char c) {
  return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

bool IsPlausiblePhone(absl::string_view m) {
  // Digits before any extension.
  int digits = 0;
  for (char c : m) {
    if (c == 'x' || c == 'e') break;
    digits += absl::ascii_isdigit(static_cast<unsigned char>(c));
  }
  if (digits < 7 || digits > 15) return false;
  // A date (and time) is not a phone number.
  static const RE2* kDate = new RE2(R"(\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})");
  return !RE2::PartialMatch(re2::StringPiece(m.data(), m.size()), *kDate);
}

RE2::Options Latin1Off() {
  RE2::Options o;
  o.set_log_errors(false);
  return o;
}

const std::vector<Pattern>& Patterns() {
  static const auto* patterns = new std::vector<Pattern>{
      {v1::EMAIL,
       new RE2(R"([A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24})", Latin1Off()),
       nullptr, IsEmailGlue, 5, /*after_at=*/true},
      {v1::CN_RESIDENT_ID, new RE2(R"(\d{17}[\dXx])", Latin1Off()),
       IsValidCnResidentId, IsAlnumGlue, 9},
      {v1::PAYMENT_CARD, new RE2(R"(\d(?:[ \-]?\d){12,18})", Latin1Off()),
       PassesLuhn, IsDigitGlue, 8},
      {v1::IBAN,
       // Country, check digits, then the account in groups of four (with or
       // without spaces) and a last short group; either letter case.
       new RE2(R"((?i)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)", Latin1Off()),
       IsValidIban, IsAlnumGlue, 8},
      {v1::US_SSN, new RE2(R"(\d{3}-\d{2}-\d{4})", Latin1Off()), IsValidUsSsn,
       IsDigitGlue, 7},
      // Mainland-China mobile: 11 digits starting 1[3-9], optionally +86.
      {v1::PHONE, new RE2(R"((?:(?:\+|00)86[ \-]?)?1[3-9]\d(?:[ \-]?\d{4}){2})", Latin1Off()),
       nullptr, IsDigitGlue, 6},
      // International: +CC then 6-14 more digits in groups.
      {v1::PHONE,
       new RE2(R"((?:\+|00)[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,4}\)?){2,5})", Latin1Off()),
       IsPlausiblePhone, IsDigitGlue, 4},
      // North American and similar national formats: (555) 555-1234, 555.555.1234.
      {v1::PHONE,
       new RE2(R"((?:1[ .\-])?(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?: ?(?:x|ext\.?) ?\d{1,5})?)", Latin1Off()),
       nullptr, IsDigitGlue, 3},
      // National formats: 2 to 6 groups of digits separated by space, dot or dash,
      // an optional area code in parentheses and extension ("x123"); 7 to 15
      // digits, not a date.
      {v1::PHONE,
       new RE2(R"((?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]\d{2,8}){1,5}(?:[ .]?(?:x|ext\.?) ?\d{1,6})?|\(\d{2,4}\) ?\d{3,8}(?:[ .\-]\d{2,8})?(?: ?x\d{1,6})?)", Latin1Off()),
       IsPlausiblePhone, IsAlnumGlue, 2},
      // A bare run of 10 digits (North-American numbers written without spaces).
      {v1::PHONE, new RE2(R"([2-9]\d{9})", Latin1Off()), nullptr, IsAlnumGlue, 1},
      {v1::IP_ADDRESS,
       new RE2(R"((?:\d{1,3}\.){3}\d{1,3}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})", Latin1Off()),
       IsValidIpAddress, IsIpGlue, 6},
  };
  return *patterns;
}

const RE2& HealthKeywords() {
  static const RE2* re = new RE2(
      R"((?i)\b(?:diagnos\w*|symptom\w*|disease\w*|cancer|tumou?r\w*|diabet\w*|asthma|hiv|aids|depress\w*|anxiety|pregnan\w*|prescri\w*|medication\w*|medicine|dosage|chemotherapy|surgery|insulin|blood pressure|hypertension|mental health|therap(?:y|ist)|psychiatr\w*|allerg\w*|vaccin\w*|std|hepatitis|illness|patient|doctor|clinic|hospital\w*)\b|病|症状|诊断|癌|糖尿病|高血压|抑郁|焦虑|怀孕|药物|处方|医院|医生|手术|治疗|疫苗|过敏|心理健康|患者)");
  return *re;
}

const RE2& FinanceKeywords() {
  static const RE2* re = new RE2(
      R"((?i)\b(?:bank account|account number|routing number|credit card|debit card|loan|mortgage|salary|income|tax return|taxes|invest\w*|stock\w*|portfolio|bankrupt\w*|debt\w*|credit score|wire transfer|pension|401k|brokerage|crypto\w*|bitcoin)\b|银行|账户|账号|信用卡|贷款|房贷|工资|收入|税|投资|股票|理财|债务|转账|养老金|基金)");
  return *re;
}

// Every identifier pattern (indices as in Patterns()) and then the two keyword
// patterns, for one pass that tells which of them occur anywhere in a text.
const RE2::Set& AllPatterns() {
  static const RE2::Set* set = [] {
    auto* s = new RE2::Set(Latin1Off(), RE2::UNANCHORED);
    for (const Pattern& p : Patterns()) s->Add(p.re->pattern(), nullptr);
    s->Add(HealthKeywords().pattern(), nullptr);
    s->Add(FinanceKeywords().pattern(), nullptr);
    if (!s->Compile()) std::abort();  // the patterns are constants
    return s;
  }();
  return *set;
}

struct Candidate {
  Span span;
  int strength;
};

// Scans text[begin, end) for every match of `p` that passes its checks and
// boundaries (which look at the whole text).
void Scan(const Pattern& p, absl::string_view text, size_t begin, size_t end_of_window,
          std::vector<Candidate>* out) {
  re2::StringPiece input(text.data(), text.size());
  re2::StringPiece m;
  size_t pos = begin;
  while (pos < end_of_window &&
         p.re->Match(input, pos, end_of_window, RE2::UNANCHORED, &m, 1)) {
    size_t start = m.data() - text.data();
    size_t end = start + m.size();
    if (m.empty()) {
      pos = start + 1;
      continue;
    }
    bool glued = (start > 0 && p.is_glue(text[start - 1])) ||
                 (end < text.size() && p.is_glue(text[end]));
    if (!glued && (p.valid == nullptr || p.valid(absl::string_view(m.data(), m.size())))) {
      out->push_back({Span{p.category, start, end}, p.strength});
      pos = end;
    } else {
      pos = start + 1;
    }
  }
}

using Window = std::pair<size_t, size_t>;

// Every identifier pattern but the e-mail one contains a digit or ':' (phone, ID
// and card numbers, IBANs, SSNs, IPv4 need digits; IPv6 ':'), and none is longer
// than kReach bytes. So only windows of kReach bytes around such characters are
// scanned, merged where they touch: ordinary prose is skipped, and the cost stays
// linear in the text.
constexpr size_t kReach = 96;

std::vector<Window> DigitWindows(absl::string_view text) {
  std::vector<Window> windows;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != ':') continue;
    size_t begin = i > kReach ? i - kReach : 0;
    size_t end = std::min(text.size(), i + kReach);
    if (!windows.empty() && begin <= windows.back().second) {
      windows.back().second = end;
    } else {
      windows.emplace_back(begin, end);
    }
  }
  return windows;
}

// An e-mail address lies within the run of characters around an '@' that its
// local part ([A-Za-z0-9._%+-]) and its domain ([A-Za-z0-9.-]) may hold.
std::vector<Window> EmailWindows(absl::string_view text) {
  auto local = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
           c == '%' || c == '+' || c == '-';
  };
  auto domain = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
  };
  std::vector<Window> windows;
  for (size_t at = text.find('@'); at != absl::string_view::npos; at = text.find('@', at + 1)) {
    size_t begin = at, end = at + 1;
    while (begin > 0 && local(text[begin - 1])) --begin;
    while (end < text.size() && domain(text[end])) ++end;
    windows.emplace_back(begin, end);
  }
  return windows;
}

// Input methods for Chinese, Japanese and Korean type digits and Latin letters in
// their full-width forms (U+FF01..U+FF5E, "１３８", "Ｘ", "＠") when set to
// full-width mode. Such text holds identifiers as surely as ASCII does, so the
// detectors read it as the ASCII it stands for (Unicode's NFKC mapping of these
// forms; the ideographic space U+3000 as a space).
//
// When `text` holds a full-width digit, Latin letter or '@' (the full-width
// punctuation of Chinese text alone does not make an identifier), fills `ascii`
// with the text so mapped and `offset` with, for each byte of `ascii` and one past
// its end, the offset in `text` of the character it came from; returns false, and
// does nothing, otherwise.
bool MapFullWidthForms(absl::string_view text, std::string* ascii, std::vector<uint32_t>* offset) {
  // In UTF-8: U+FF10..U+FF19 (digits) are EF BC 90..99, U+FF20..U+FF3A ('@', A-Z)
  // EF BC A0..BA, U+FF41..U+FF5A (a-z) EF BD 81..9A.
  bool found = false;
  for (size_t i = text.find('\xEF'); i != absl::string_view::npos && i + 2 < text.size();
       i = text.find('\xEF', i + 1)) {
    const unsigned char b2 = text[i + 1], b3 = text[i + 2];
    if ((b2 == 0xBC && ((b3 >= 0x90 && b3 <= 0x99) || (b3 >= 0xA0 && b3 <= 0xBA))) ||
        (b2 == 0xBD && b3 >= 0x81 && b3 <= 0x9A)) {
      found = true;
      break;
    }
  }
  if (!found || text.size() >= UINT32_MAX) return false;
  ascii->clear();
  ascii->reserve(text.size());
  offset->clear();
  offset->reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const unsigned char b1 = text[i];
    const unsigned char b2 = i + 1 < text.size() ? text[i + 1] : 0;
    const unsigned char b3 = i + 2 < text.size() ? text[i + 2] : 0;
    char mapped = 0;
    if (b1 == 0xEF && b2 == 0xBC && b3 >= 0x81 && b3 <= 0xBF) {  // U+FF01..U+FF3F
      mapped = static_cast<char>('!' + (b3 - 0x81));
    } else if (b1 == 0xEF && b2 == 0xBD && b3 >= 0x80 && b3 <= 0x9E) {  // U+FF40..U+FF5E
      mapped = static_cast<char>('`' + (b3 - 0x80));
    } else if (b1 == 0xE3 && b2 == 0x80 && b3 == 0x80) {  // U+3000
      mapped = ' ';
    }
    offset->push_back(static_cast<uint32_t>(i));
    if (mapped != 0) {
      ascii->push_back(mapped);
      i += 3;
    } else {
      ascii->push_back(text[i]);
      i += 1;
    }
  }
  offset->push_back(static_cast<uint32_t>(text.size()));
  return true;
}

}  // namespace

Detectors::Detectors(Options options) : options_(options) {
  // Compile everything up front so that the first request does not pay for it.
  Patterns();
  HealthKeywords();
  FinanceKeywords();
  AllPatterns();
}

Detectors::Findings Detectors::Analyze(absl::string_view text) const {
  std::string ascii;
  std::vector<uint32_t> offset;
  if (!MapFullWidthForms(text, &ascii, &offset)) return AnalyzeMapped(text);
  Findings found = AnalyzeMapped(ascii);
  // Every pattern matches ASCII only, so its span starts and ends at characters
  // of `ascii`, each of which came from one character of `text`.
  for (Span& s : found.spans) {
    s.start = offset[s.start];
    s.end = offset[s.end];
  }
  return found;
}

Detectors::Findings Detectors::AnalyzeMapped(absl::string_view text) const {
  const std::vector<Pattern>& patterns = Patterns();
  const int health = patterns.size(), finance = health + 1;
  // Which patterns occur anywhere: the windows below are parts of the text and no
  // pattern is anchored, so a pattern that does not match the text cannot match a
  // window. If the set cannot tell (it ran out of memory), run them all.
  std::vector<bool> run(patterns.size() + 2, true);
  bool decided = false;
  if (options_.prefilter) {
    std::vector<int> hits;
    RE2::Set::ErrorInfo error;
    decided = AllPatterns().Match(re2::StringPiece(text.data(), text.size()), &hits, &error) ||
              error.kind == RE2::Set::kNoError;
    if (decided) {
      run.assign(run.size(), false);
      for (int i : hits) run[i] = true;
    }
  }
  Findings out;
  out.health = decided ? run[health] : MentionsHealth(text);
  out.finance = decided ? run[finance] : MentionsFinance(text);
  if (std::find(run.begin(), run.begin() + health, true) == run.begin() + health) return out;

  std::vector<Candidate> candidates;
  std::vector<Window> email_windows, digit_windows;
  bool have_email_windows = false, have_digit_windows = false;
  for (size_t i = 0; i < patterns.size(); ++i) {
    if (!run[i]) continue;
    const bool email = patterns[i].after_at;
    if (email && !have_email_windows) {
      email_windows = EmailWindows(text);
      have_email_windows = true;
    } else if (!email && !have_digit_windows) {
      digit_windows = DigitWindows(text);
      have_digit_windows = true;
    }
    for (const auto& [begin, end] : email ? email_windows : digit_windows) {
      Scan(patterns[i], text, begin, end, &candidates);
    }
  }
  // Longest first, then strongest; keep each that overlaps none already kept.
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    size_t la = a.span.end - a.span.start, lb = b.span.end - b.span.start;
    if (la != lb) return la > lb;
    if (a.strength != b.strength) return a.strength > b.strength;
    return a.span.start < b.span.start;
  });
  for (const Candidate& c : candidates) {
    const Span& s = c.span;
    bool overlaps = std::any_of(out.spans.begin(), out.spans.end(), [&](const Span& k) {
      return s.start < k.end && k.start < s.end;
    });
    if (!overlaps) out.spans.push_back(s);
  }
  std::sort(out.spans.begin(), out.spans.end(),
            [](const Span& a, const Span& b) { return a.start < b.start; });
  return out;
}

std::vector<Span> Detectors::FindSpans(absl::string_view text) const {
  return Analyze(text).spans;
}

bool Detectors::MentionsHealth(absl::string_view text) const {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), HealthKeywords());
}

bool Detectors::MentionsFinance(absl::string_view text) const {
  return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), FinanceKeywords());
}

bool IsValidCnResidentId(absl::string_view id) {
  if (id.size() != 18) return false;
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kCheck[11] = {'1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'};
  int sum = 0;
  for (int i = 0; i < 17; ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(id[i]))) return false;
    sum += (id[i] - '0') * kWeights[i];
  }
  if (absl::ascii_toupper(static_cast<unsigned char>(id[17])) != kCheck[sum % 11]) return false;
  // Digits 7-14 are the birth date YYYYMMDD.
  int year = std::stoi(std::string(id.substr(6, 4)));
  int month = std::stoi(std::string(id.substr(10, 2)));
  int day = std::stoi(std::string(id.substr(12, 2)));
  return year >= 1900 && year <= 2100 && month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

bool PassesLuhn(absl::string_view s) {
  int sum = 0, n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (*it == ' ' || *it == '-') continue;
    if (!absl::ascii_isdigit(static_cast<unsigned char>(*it))) return false;
    int d = *it - '0';
    if (n % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    ++n;
  }
  return n >= 13 && n <= 19 && sum % 10 == 0;
}

bool IsValidIban(absl::string_view iban) {
  std::string compact;
  for (char c : iban) {
    if (c != ' ') compact.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  }
  if (compact.size() < 15 || compact.size() > 34) return false;
  // Move the country code and check digits to the end, letters to 10..35, mod 97.
  std::string rearranged = compact.substr(4) + compact.substr(0, 4);
  int rem = 0;
  for (char c : rearranged) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else if (c >= 'A' && c <= 'Z') {
      int v = c - 'A' + 10;
      rem = (rem * 100 + v) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

bool IsValidUsSsn(absl::string_view ssn) {
  if (ssn.size() != 11 || ssn[3] != '-' || ssn[6] != '-') return false;
  absl::string_view area = ssn.substr(0, 3), group = ssn.substr(4, 2), serial = ssn.substr(7, 4);
  if (area == "000" || area == "666" || area[0] == '9') return false;
  return group != "00" && serial != "0000";
}

bool IsValidIpAddress(absl::string_view ip) {
  std::string s(ip);
  unsigned char buf[16];
  if (s.find(':') != std::string::npos) {
    // Require some substance: a lone "::" or a time like "12:30" is not an address.
    if (std::count(s.begin(), s.end(), ':') < 2 || s.size() < 6) return false;
    return inet_pton(AF_INET6, s.c_str(), buf) == 1;
  }
  return inet_pton(AF_INET, s.c_str(), buf) == 1;
}

}  // namespace hr::router
