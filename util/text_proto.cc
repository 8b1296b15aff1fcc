#include "util/text_proto.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
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
    out_->push_back(absl::StrCat(FileAndLine(file_, {line, column}), ": ", message));
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

absl::StatusOr<std::string> ReadFile(const std::string& path, const ReadOptions& options) {
  auto failed = [&path](int err) -> absl::Status {
    std::string msg = absl::StrCat("cannot read ", path, ": ", std::strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(msg);
    // EISDIR (a directory opens, but does not read), EIO...: reading it stopped
    // short, so what was read is not the file.
    return absl::InvalidArgumentError(msg);
  };
  // Without blocking: opening a FIFO waits for a writer.
  const int fd =
      open(path.c_str(), O_RDONLY | O_CLOEXEC | (options.regular_file_only ? O_NONBLOCK : 0));
  if (fd < 0) return failed(errno);
  absl::Cleanup closed = [fd] { close(fd); };
  auto refused = [&path](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", why));
  };
  struct stat st {};
  if (fstat(fd, &st) != 0) return failed(errno);
  if (options.regular_file_only && !S_ISREG(st.st_mode)) {
    return refused(S_ISDIR(st.st_mode) ? std::strerror(EISDIR) : "not a regular file");
  }
  const std::string too_large =
      absl::StrCat("larger than the limit of ", options.max_bytes, " bytes");
  if (S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) > options.max_bytes) {
    return refused(too_large);
  }
  std::string text;
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return failed(errno);
    }
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > options.max_bytes) return refused(too_large);
  }
  return text;
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

bool ParseConfig(const std::string& path, const std::string& text, google::protobuf::Message* msg,
                 std::vector<std::string>* problems, ConfigPositions* positions) {
  if (!absl::EndsWith(path, ".json")) {
    google::protobuf::TextFormat::ParseInfoTree tree;
    if (!ParseTextProto(path, text, msg, problems, &tree)) return false;
    if (positions != nullptr) {
      *positions = ConfigPositions::FromTextFormat(tree, msg->GetDescriptor());
    }
    return true;
  }
  // protobuf decides what the file means; a JSON reader that keeps positions
  // says where (protobuf 3.21 reports none), read when they are wanted.
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(text, msg, options);
  if (parsed.ok() && positions == nullptr) return true;
  absl::StatusOr<ConfigPositions> where = ConfigPositions::FromJson(text, msg->GetDescriptor());
  if (parsed.ok()) {
    // Text protobuf reads but this reader does not (single quotes): no positions.
    if (where.ok()) *positions = *std::move(where);
    return true;
  }
  if (!where.ok()) {  // not JSON: the syntax error, at its line
    problems->push_back(absl::StrCat(path, ":", where.status().message()));
    return false;
  }
  // JSON that does not fit the message. protobuf names the field as
  // "(jurisdictions[0].cloud.when_unavailable): ..." or, for a field the
  // message lacks, "(jurisdictions[0]) colour: ..." ("colour: ..." at the top).
  const std::string message = parsed.message().as_string();
  std::string field;
  absl::string_view rest = message;
  if (absl::ConsumePrefix(&rest, "(") && rest.find(')') != absl::string_view::npos) {
    const size_t close = rest.find(')');
    field = std::string(rest.substr(0, close));
    rest.remove_prefix(close + 1);
    absl::ConsumePrefix(&rest, " ");
  }
  if (const size_t colon = rest.find(": ");
      colon != absl::string_view::npos && colon > 0 &&
      rest.substr(0, colon).find(' ') == absl::string_view::npos) {
    field = field.empty() ? std::string(rest.substr(0, colon))
                          : absl::StrCat(field, ".", rest.substr(0, colon));
  }
  problems->push_back(absl::StrCat(FileAndLine(path, where->Find(field)), ": ", message));
  return false;
}

absl::Status ParseJsonLine(absl::string_view line, google::protobuf::Message* msg) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      std::string(absl::StripAsciiWhitespace(line)), msg, options);
  if (parsed.ok()) return absl::OkStatus();
  // A syntax error goes on with the line itself and a caret under the spot;
  // the line is a prompt, which errors do not repeat.
  const std::string message = parsed.message().as_string();
  return absl::InvalidArgumentError(absl::string_view(message).substr(0, message.find('\n')));
}

}  // namespace hr::util
