#ifndef HYBRID_ROUTER_UTIL_TEXT_PROTO_H_
#define HYBRID_ROUTER_UTIL_TEXT_PROTO_H_

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"
#include "util/config_positions.h"

namespace hr::util {

struct ReadOptions {
  // Refuse anything but a regular file (a symlink to one is fine): a FIFO would
  // block the read until someone writes to it, a device never end.
  bool regular_file_only = false;
  size_t max_bytes = std::numeric_limits<size_t>::max();
};

// For configuration: policy, backends, certificates and keys.
inline constexpr ReadOptions kConfigFile{/*regular_file_only=*/true, /*max_bytes=*/16 << 20};

// Reads a whole file. NotFound, PermissionDenied or (a directory, a read that
// failed part way, a file `options` refuse) InvalidArgument naming the path on
// failure.
absl::StatusOr<std::string> ReadFile(const std::string& path, const ReadOptions& options = {});

// Parses textproto `text` (read from `path`, which only names it in messages) into
// `msg`. Appends one "PATH:LINE:COLUMN: message" per parser error to `problems`
// and returns false on failure. `tree`, when given, receives field positions.
bool ParseTextProto(const std::string& path, const std::string& text,
                    google::protobuf::Message* msg, std::vector<std::string>* problems,
                    google::protobuf::TextFormat::ParseInfoTree* tree = nullptr);

// Parses a configuration file's `text` (read from `path`) into `msg`: as JSON
// (protobuf's JSON mapping: proto or lowerCamel field names, enums by name) when
// `path` ends in ".json", else as textproto (ParseTextProto). A field the message
// does not have is a problem in both. Problems are "PATH:LINE:COLUMN: message"
// where the line is known. `positions`, when given, receives where each field is.
bool ParseConfig(const std::string& path, const std::string& text, google::protobuf::Message* msg,
                 std::vector<std::string>* problems, ConfigPositions* positions = nullptr);

// Parses one line of JSONL (a JSON object; surrounding whitespace, a trailing
// \r included, is ignored) into `msg`, skipping fields the message does not
// have. InvalidArgument with the JSON parser's message on failure, without the
// text of the line; callers add where the line came from.
absl::Status ParseJsonLine(absl::string_view line, google::protobuf::Message* msg);

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_TEXT_PROTO_H_
