#include "policy/locale.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "util/log_format.h"

namespace hr::policy {
namespace {

constexpr size_t kMaxTagBytes = 128;

bool AllOf(absl::string_view s, bool (*pred)(unsigned char)) {
  for (char c : s) {
    if (!pred(static_cast<unsigned char>(c))) return false;
  }
  return true;
}
bool IsAlpha(absl::string_view s) { return AllOf(s, absl::ascii_isalpha); }
bool IsDigit(absl::string_view s) { return AllOf(s, absl::ascii_isdigit); }
bool IsAlnum(absl::string_view s) { return AllOf(s, absl::ascii_isalnum); }

bool IsVariant(absl::string_view s) {
  if (!IsAlnum(s)) return false;
  if (s.size() >= 5 && s.size() <= 8) return true;
  return s.size() == 4 && absl::ascii_isdigit(static_cast<unsigned char>(s[0]));
}

absl::Status Malformed(absl::string_view tag, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("locale '", util::ForLog(tag), "' is not a BCP 47 tag: ", why));
}

}  // namespace

absl::StatusOr<Locale> ParseLocale(absl::string_view tag) {
  if (tag.empty()) return absl::InvalidArgumentError("locale is required");
  if (tag.size() > kMaxTagBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "locale is ", tag.size(), " bytes; the limit is ", kMaxTagBytes));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(tag, absl::ByAnyChar("-_"));
  for (absl::string_view p : parts) {
    if (p.empty()) return Malformed(tag, "empty subtag");
    if (!IsAlnum(p))
      return Malformed(tag, absl::StrCat("subtag '", util::ForLog(p),
                                         "' has a character other than a letter or digit"));
    if (p.size() > 8)
      return Malformed(tag,
                       absl::StrCat("subtag '", util::ForLog(p), "' is longer than 8 characters"));
  }

  Locale locale;
  size_t i = 0;
  // Language: 2-3 letters (possibly followed by up to three 3-letter extlangs), or
  // a registered 4-8 letter language. A tag of private use only ("x-...") has none.
  if (!IsAlpha(parts[0]) || parts[0].size() == 1) {
    return Malformed(tag, absl::StrCat("language '", parts[0], "' must be 2 to 8 letters"));
  }
  locale.language = absl::AsciiStrToLower(parts[0]);
  ++i;
  if (locale.language.size() <= 3) {
    for (int ext = 0; ext < 3 && i < parts.size() && parts[i].size() == 3 && IsAlpha(parts[i]); ++ext) ++i;
  }
  if (i < parts.size() && parts[i].size() == 4 && IsAlpha(parts[i])) {
    locale.script = absl::AsciiStrToLower(parts[i]);
    locale.script[0] = absl::ascii_toupper(static_cast<unsigned char>(locale.script[0]));
    ++i;
  }
  if (i < parts.size() && ((parts[i].size() == 2 && IsAlpha(parts[i])) ||
                           (parts[i].size() == 3 && IsDigit(parts[i])))) {
    locale.region = absl::AsciiStrToUpper(parts[i]);
    ++i;
  }
  while (i < parts.size() && IsVariant(parts[i])) ++i;
  // Extensions ("u-ca-gregory") and private use ("x-foo"): a singleton followed by
  // at least one subtag.
  while (i < parts.size()) {
    if (parts[i].size() != 1) {
      return Malformed(tag, absl::StrCat("unexpected subtag '", parts[i], "'"));
    }
    bool private_use = absl::ascii_tolower(static_cast<unsigned char>(parts[i][0])) == 'x';
    size_t min_len = private_use ? 1 : 2;
    ++i;
    size_t start = i;
    while (i < parts.size() && parts[i].size() >= min_len &&
           (private_use || parts[i].size() > 1)) {
      ++i;
    }
    if (i == start) {
      return Malformed(tag, "an extension or private-use singleton has no subtags");
    }
  }
  return locale;
}

}  // namespace hr::policy
