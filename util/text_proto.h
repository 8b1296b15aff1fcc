#ifndef HYBRID_ROUTER_UTIL_TEXT_PROTO_H_
#define HYBRID_ROUTER_UTIL_TEXT_PROTO_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"

namespace hr::util {

// Reads a whole file. NotFound, PermissionDenied or (a directory, a read that
// failed part way) InvalidArgument naming the path on failure.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Parses textproto `text` (read from `path`, which only names it in messages) into
// `msg`. Appends one "PATH:LINE:COLUMN: message" per parser error to `problems`
// and returns false on failure. `tree`, when given, receives field positions.
bool ParseTextProto(const std::string& path, const std::string& text,
                    google::protobuf::Message* msg, std::vector<std::string>* problems,
                    google::protobuf::TextFormat::ParseInfoTree* tree = nullptr);

// Parses one line of JSONL (a JSON object; surrounding whitespace, a trailing
// \r included, is ignored) into `msg`, skipping fields the message does not
// have. InvalidArgument with the JSON parser's message on failure; callers add
// where the line came from.
absl::Status ParseJsonLine(absl::string_view line, google::protobuf::Message* msg);

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_TEXT_PROTO_H_
