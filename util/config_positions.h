#ifndef HYBRID_ROUTER_UTIL_CONFIG_POSITIONS_H_
#define HYBRID_ROUTER_UTIL_CONFIG_POSITIONS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/text_format.h"

namespace hr::util {

// Where a configuration file gave each of its fields, so that a problem found
// after parsing (a country listed twice, an unknown region) can name the line.
// Fields are named as in the .proto file, whatever name the file used.
class ConfigPositions {
 public:
  // 0-based; -1 when unknown.
  struct Location {
    int line = -1;
    int column = -1;
    bool known() const { return line >= 0; }
  };

  ConfigPositions() = default;
  ConfigPositions(ConfigPositions&&) = default;
  ConfigPositions& operator=(ConfigPositions&&) = default;

  // The positions textproto's parser recorded for a message of type `d`.
  static ConfigPositions FromTextFormat(const google::protobuf::TextFormat::ParseInfoTree& tree,
                                        const google::protobuf::Descriptor* d);
  // The positions of the fields of a message of type `d` in JSON `text` (proto
  // or lowerCamel field names; a key the message lacks is kept under its own
  // name). InvalidArgument "LINE:COLUMN: what is wrong" (1-based) when `text` is
  // not JSON.
  static absl::StatusOr<ConfigPositions> FromJson(absl::string_view text,
                                                  const google::protobuf::Descriptor* d);

  // Where the `index`th value of `field` starts (index -1: a field that is not
  // repeated).
  Location Get(absl::string_view field, int index) const;
  // The positions inside that value, a message; null when unknown.
  const ConfigPositions* Nested(absl::string_view field, int index) const;
  // Where the value at `path` starts: field names joined by '.', each repeated
  // one with its index, as in "jurisdictions[1].cloud.allowed_regions[0]".
  Location Find(absl::string_view path) const;

 private:
  friend class JsonPositionsHandler;
  struct Value {
    Location at;
    std::unique_ptr<ConfigPositions> nested;  // for a message
  };
  const Value* Lookup(absl::string_view field, int index) const;

  std::map<std::string, std::vector<Value>, std::less<>> fields_;
};

// "FILE:LINE:COLUMN" (1-based) for messages; "FILE" when `at` is not known.
std::string FileAndLine(absl::string_view file, ConfigPositions::Location at);

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_CONFIG_POSITIONS_H_
