#ifndef HYBRID_ROUTER_UTIL_UTF8_H_
#define HYBRID_ROUTER_UTIL_UTF8_H_

#include <cstddef>
#include "absl/strings/string_view.h"

namespace hr::util {

// Byte offset of the first byte that is not part of well-formed UTF-8 (no
// overlong forms, surrogates or code points above U+10FFFF), or npos when the
// whole text is well-formed.
size_t FindInvalidUtf8(absl::string_view text);

// The length of the longest prefix of `text` that does not end inside a
// character; for streamed text whose last character may still be incomplete.
size_t CompleteUtf8Prefix(absl::string_view text);

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_UTF8_H_
