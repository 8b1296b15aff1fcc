#ifndef HYBRID_ROUTER_UTIL_LOG_FORMAT_H_
#define HYBRID_ROUTER_UTIL_LOG_FORMAT_H_

// Lets spdlog/fmt format absl::string_view (a distinct type in Debian's Abseil),
// such as absl::Status::message(). Include before logging one.

#include "absl/strings/string_view.h"
#include "spdlog/fmt/fmt.h"

template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

#endif  // HYBRID_ROUTER_UTIL_LOG_FORMAT_H_
