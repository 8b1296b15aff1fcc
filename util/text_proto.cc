#include "util/text_proto.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/util/json_util.h"

namespace hr::util {
namespace {

// Collects the parser's own errors (syntax, unknown field or enum value).
class CollectingErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  CollectingErrorCollector(std::string file, std::vector<std::string>* out)
      : file_(std::move(file)), out_(out) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    out_->push_back(absl::StrCat(file_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    AddError(line, column, message);
  }

 private:
  std::string file_;
  std::vector<std::string>* out_;
};

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string msg = absl::StrCat("cannot read ", path, ": ", std::strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::NotFoundError(msg);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ParseTextProto(const std::string& path, const std::string& text,
                    google::protobuf::Message* msg, std::vector<std::string>* problems,
                    google::protobuf::TextFormat::ParseInfoTree* tree) {
  google::protobuf::TextFormat::Parser parser;
  CollectingErrorCollector errors(path, problems);
  parser.RecordErrorsTo(&errors);
  if (tree != nullptr) parser.WriteLocationsTo(tree);
  return parser.ParseFromString(text, msg);
}

absl::Status ParseJsonLine(absl::string_view line, google::protobuf::Message* msg) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      std::string(absl::StripAsciiWhitespace(line)), msg, options);
  if (!parsed.ok()) return absl::InvalidArgumentError(parsed.message().as_string());
  return absl::OkStatus();
}

}  // namespace hr::util
