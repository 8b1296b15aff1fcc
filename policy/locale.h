#ifndef HYBRID_ROUTER_POLICY_LOCALE_H_
#define HYBRID_ROUTER_POLICY_LOCALE_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace hr::policy {

// The parts of a BCP 47 language tag that routing needs.
struct Locale {
  std::string language;  // lower case, e.g. "zh"
  std::string script;    // title case, e.g. "Hans"; empty when absent
  std::string region;    // upper case "CN" or three digits "419"; empty when absent

  // The ISO 3166-1 alpha-2 country of the tag, or empty when the tag has no
  // region subtag or a numeric (UN M.49) one.
  absl::string_view country() const {
    return region.size() == 2 ? absl::string_view(region) : absl::string_view();
  }
};

// Parses a BCP 47 tag such as "zh-Hans-CN", "de-DE", "en" or "es-419". Accepts
// '_' as a separator as well as '-', and any letter case. Variants, extensions and
// private-use subtags are checked for form and ignored.
//
// Returns InvalidArgument, with a message naming the offending subtag, for an
// empty tag, a tag over 128 bytes, or a tag that is not well-formed.
absl::StatusOr<Locale> ParseLocale(absl::string_view tag);

}  // namespace hr::policy

#endif  // HYBRID_ROUTER_POLICY_LOCALE_H_
