#ifndef HYBRID_ROUTER_UTIL_LOG_FORMAT_H_
#define HYBRID_ROUTER_UTIL_LOG_FORMAT_H_

// Lets spdlog/fmt format absl::string_view (a distinct type in Debian's Abseil),
// such as absl::Status::message(). Include before logging one.

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "spdlog/fmt/fmt.h"

template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace hr::util {

// A caller-chosen string (a request id, a claimed jurisdiction) as it may appear
// in a log line or an error message: at most `max_bytes` of it, with control
// characters, quotes and bytes beyond ASCII escaped, so that it can neither
// forge a line nor carry much text.
inline std::string ForLog(absl::string_view s, size_t max_bytes = 64) {
  std::string out = absl::CHexEscape(s.substr(0, max_bytes));
  if (s.size() > max_bytes) out += "...";
  return out;
}

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_LOG_FORMAT_H_
