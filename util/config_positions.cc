#include "util/config_positions.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace hr::util {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;

namespace {

// Byte offsets to 0-based lines and columns.
class LineIndex {
 public:
  explicit LineIndex(absl::string_view text) {
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') newlines_.push_back(i);
    }
  }
  ConfigPositions::Location At(size_t offset) const {
    const auto line = std::upper_bound(newlines_.begin(), newlines_.end(), offset);
    const size_t start = line == newlines_.begin() ? 0 : *(line - 1) + 1;
    return {static_cast<int>(line - newlines_.begin()), static_cast<int>(offset - start)};
  }

 private:
  std::vector<size_t> newlines_;
};

// The field of `d` that JSON key `key` names: its proto name or its JSON name.
const FieldDescriptor* FieldForKey(const Descriptor* d, absl::string_view key) {
  if (d == nullptr) return nullptr;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->name() == key || f->json_name() == key) return f;
  }
  return nullptr;
}

// A pointer into the text that tells, through `reached`, how far the JSON
// reader has read: it reads a character at a time, so when it reports a token,
// the token has just been read.
class TrackingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* at, const char** reached) : at_(at), reached_(reached) {}
  reference operator*() const { return *at_; }
  TrackingIterator& operator++() {
    *reached_ = ++at_;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const TrackingIterator& other) const { return at_ == other.at_; }
  bool operator!=(const TrackingIterator& other) const { return at_ != other.at_; }

 private:
  const char* at_;
  const char** reached_;
};

bool IsNumberCharacter(char c) {
  return absl::ascii_isdigit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

}  // namespace

// Builds ConfigPositions from the JSON reader's events; a token's start is
// found from how far the reader had read when it reported the token.
class JsonPositionsHandler : public nlohmann::json_sax<nlohmann::json> {
 public:
  JsonPositionsHandler(absl::string_view text, const char* const* reached, ConfigPositions* root,
                       const Descriptor* type)
      : text_(text), lines_(text), reached_(reached), root_(root), root_type_(type) {}

  bool null() override { return Scalar(End() - 4); }
  bool boolean(bool b) override { return Scalar(End() - (b ? 4 : 5)); }
  bool number_integer(number_integer_t /*n*/) override { return Scalar(NumberStart()); }
  bool number_unsigned(number_unsigned_t /*n*/) override { return Scalar(NumberStart()); }
  bool number_float(number_float_t /*n*/, const string_t& /*s*/) override {
    return Scalar(NumberStart());
  }
  bool string(string_t& /*s*/) override { return Scalar(StringStart()); }
  bool binary(binary_t& /*b*/) override { return true; }  // not in JSON text
  bool start_object(std::size_t /*elements*/) override { return Begin(End() - 1, Kind::kObject); }
  bool start_array(std::size_t /*elements*/) override { return Begin(End() - 1, Kind::kArray); }
  bool end_object() override { return Pop(); }
  bool end_array() override { return Pop(); }
  bool key(string_t& key) override {
    Frame& top = frames_.back();
    const FieldDescriptor* field = FieldForKey(top.type, key);
    top.key = field != nullptr ? field->name() : key;
    top.key_at = lines_.At(StringStart());
    top.field = field;
    return true;
  }
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& e) override {
    // "[json.exception.parse_error.101] parse error at line 3, column 15: syntax
    // error while parsing value - unexpected ','; ..." without what comes before
    // the reason: the position is said our way.
    absl::string_view why = e.what();
    if (const size_t at = why.find(": "); at != absl::string_view::npos) why.remove_prefix(at + 2);
    const ConfigPositions::Location at =
        lines_.At(std::min(position > 0 ? position - 1 : 0, text_.empty() ? 0 : text_.size() - 1));
    error_ = absl::StrCat(at.line + 1, ":", at.column + 1, ": ", why);
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  enum class Kind { kObject, kArray, kIgnored };
  struct Frame {
    Kind kind = Kind::kIgnored;
    ConfigPositions* object = nullptr;                     // kObject: where its fields go
    std::vector<ConfigPositions::Value>* array = nullptr;  // kArray: where its elements go
    const Descriptor* type = nullptr;  // the message type of the object or the array's elements
    // kObject: the key whose value comes next.
    std::string key;
    ConfigPositions::Location key_at;
    const FieldDescriptor* field = nullptr;
  };

  size_t End() const { return static_cast<size_t>(*reached_ - text_.data()); }
  // Where the string that was just read started: its opening quote, the last
  // one before the closing quote that no backslash escapes.
  size_t StringStart() const {
    size_t i = End() - 1;  // the closing quote
    while (i > 0) {
      --i;
      if (text_[i] != '"') continue;
      size_t backslashes = 0;
      while (backslashes < i && text_[i - 1 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) return i;
    }
    return 0;
  }
  // Where the number that was just read started (the reader has also read the
  // character after it, unless the text ended).
  size_t NumberStart() const {
    size_t i = End();
    if (i > 0 && !IsNumberCharacter(text_[i - 1])) --i;
    while (i > 0 && IsNumberCharacter(text_[i - 1])) --i;
    return i;
  }

  bool Scalar(size_t start) { return Begin(start, Kind::kIgnored, /*scalar=*/true); }

  // A value starts at `start`: records where, and for an object or an array
  // opens the frame its contents go to.
  bool Begin(size_t start, Kind kind, bool scalar = false) {
    Frame next;
    if (frames_.empty()) {
      if (kind == Kind::kObject) next = Frame{Kind::kObject, root_, nullptr, root_type_};
    } else if (Frame& top = frames_.back(); top.kind == Kind::kObject) {
      std::vector<ConfigPositions::Value>& values = top.object->fields_[top.key];
      const Descriptor* type = top.field != nullptr ? top.field->message_type() : nullptr;
      if (kind == Kind::kArray) {
        next = Frame{Kind::kArray, nullptr, &values, type};
      } else {
        values.push_back({top.key_at, nullptr});
        if (kind == Kind::kObject) next = Nest(values.back(), type);
      }
    } else if (top.kind == Kind::kArray) {
      top.array->push_back({lines_.At(start), nullptr});
      if (kind == Kind::kObject) next = Nest(top.array->back(), top.type);
    }
    if (!scalar) frames_.push_back(std::move(next));
    return true;
  }

  static Frame Nest(ConfigPositions::Value& value, const Descriptor* type) {
    value.nested = std::make_unique<ConfigPositions>();
    return Frame{Kind::kObject, value.nested.get(), nullptr, type};
  }

  bool Pop() {
    frames_.pop_back();
    return true;
  }

  const absl::string_view text_;
  const LineIndex lines_;
  const char* const* const reached_;
  ConfigPositions* const root_;
  const Descriptor* const root_type_;
  std::vector<Frame> frames_;
  std::string error_;
};

ConfigPositions ConfigPositions::FromTextFormat(
    const google::protobuf::TextFormat::ParseInfoTree& tree, const Descriptor* d) {
  ConfigPositions out;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    std::vector<Value> values;
    for (int index = f->is_repeated() ? 0 : -1;; ++index) {
      const auto loc = tree.GetLocation(f, index);
      if (loc.line < 0) break;
      Value v{{loc.line, loc.column}, nullptr};
      if (f->message_type() != nullptr) {
        if (const auto* nested = tree.GetTreeForNested(f, index)) {
          v.nested = std::make_unique<ConfigPositions>(FromTextFormat(*nested, f->message_type()));
        }
      }
      values.push_back(std::move(v));
      if (index == -1) break;
    }
    if (!values.empty()) out.fields_[f->name()] = std::move(values);
  }
  return out;
}

absl::StatusOr<ConfigPositions> ConfigPositions::FromJson(absl::string_view text,
                                                          const Descriptor* d) {
  ConfigPositions out;
  const char* reached = text.data();
  JsonPositionsHandler handler(text, &reached, &out, d);
  if (!nlohmann::json::sax_parse(TrackingIterator(text.data(), &reached),
                                 TrackingIterator(text.data() + text.size(), &reached), &handler)) {
    return absl::InvalidArgumentError(handler.error());
  }
  return out;
}

std::string FileAndLine(absl::string_view file, ConfigPositions::Location at) {
  if (!at.known()) return std::string(file);
  return absl::StrCat(file, ":", at.line + 1, ":", at.column + 1);
}

const ConfigPositions::Value* ConfigPositions::Lookup(absl::string_view field, int index) const {
  auto it = fields_.find(field);
  const size_t i = index < 0 ? 0 : static_cast<size_t>(index);
  if (it == fields_.end() || i >= it->second.size()) return nullptr;
  return &it->second[i];
}

ConfigPositions::Location ConfigPositions::Get(absl::string_view field, int index) const {
  const Value* v = Lookup(field, index);
  return v == nullptr ? Location{} : v->at;
}

const ConfigPositions* ConfigPositions::Nested(absl::string_view field, int index) const {
  const Value* v = Lookup(field, index);
  return v == nullptr ? nullptr : v->nested.get();
}

ConfigPositions::Location ConfigPositions::Find(absl::string_view path) const {
  const ConfigPositions* here = this;
  Location found;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (here == nullptr) break;
    int index = -1;
    if (absl::ConsumeSuffix(&part, "]")) {
      const size_t open = part.rfind('[');
      if (open == absl::string_view::npos || !absl::SimpleAtoi(part.substr(open + 1), &index)) {
        break;
      }
      part = part.substr(0, open);
    }
    const Value* v = here->Lookup(part, index);
    if (v == nullptr) break;
    found = v->at;  // the deepest part of the path that is known
    here = v->nested.get();
  }
  return found;
}

}  // namespace hr::util
