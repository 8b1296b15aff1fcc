#include "util/proto_enum.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hr::util {

std::string NotAnEnumValue(const google::protobuf::EnumDescriptor* e, int value, bool list_zero) {
  if (e->FindValueByNumber(value) != nullptr) return "";
  std::vector<std::string> names;
  for (int i = 0; i < e->value_count(); ++i) {
    if (list_zero || e->value(i)->number() != 0) names.push_back(e->value(i)->name());
  }
  return absl::StrCat(value, " is not a", absl::StrContains("AEIOU", e->name()[0]) ? "n " : " ",
                      e->name(), " (one of ", absl::StrJoin(names, ", "), ")");
}

}  // namespace hr::util
