#include "absl/strings/string_view.h"
#include "router/redaction.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace hr::router {

Redacted Redact(const std::vector<absl::string_view>& contents,
                const std::vector<std::vector<Span>>& spans,
                const std::array<bool, policy::kNumCategories>& redact) {
  Redacted out;
  absl::flat_hash_map<std::string, std::string> placeholder_of;
  // The number the next placeholder of each category gets.
  std::array<int, policy::kNumCategories> next{};
  // Whether `placeholder` is text the conversation already holds (typed by the
  // user, say): that one is skipped, so that each placeholder stands for one value.
  auto in_contents = [&contents](absl::string_view placeholder) {
    return std::any_of(contents.begin(), contents.end(), [placeholder](absl::string_view c) {
      return absl::StrContains(c, placeholder);
    });
  };
  for (size_t i = 0; i < contents.size(); ++i) {
    absl::string_view text = contents[i];
    std::string result;
    result.reserve(text.size());
    size_t pos = 0;
    for (const Span& s : spans[i]) {
      if (!redact[s.category]) continue;
      absl::StrAppend(&result, text.substr(pos, s.start - pos));
      std::string value(text.substr(s.start, s.end - s.start));
      auto it = placeholder_of.find(value);
      if (it == placeholder_of.end()) {
        ++out.counts[s.category];
        std::string placeholder;
        do {
          placeholder = absl::StrCat("[", v1::SensitiveCategory_Name(s.category), "_",
                                     ++next[s.category], "]");
        } while (in_contents(placeholder));
        out.mapping.emplace_back(placeholder, value);
        it = placeholder_of.emplace(value, std::move(placeholder)).first;
      }
      result.append(it->second);
      pos = s.end;
    }
    absl::StrAppend(&result, text.substr(pos));
    out.contents.push_back(std::move(result));
  }
  return out;
}

Restorer::Restorer(std::vector<std::pair<std::string, std::string>> mapping)
    : mapping_(std::move(mapping)) {}

std::string Restorer::Feed(absl::string_view chunk) {
  if (mapping_.empty()) return std::string(chunk);
  absl::StrAppend(&pending_, chunk);
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    size_t open = pending_.find('[', pos);
    if (open == std::string::npos) {
      out.append(pending_, pos, std::string::npos);
      pos = pending_.size();
      break;
    }
    out.append(pending_, pos, open - pos);
    absl::string_view rest = absl::string_view(pending_).substr(open);
    bool matched = false, maybe = false;
    for (const auto& [placeholder, value] : mapping_) {
      if (absl::StartsWith(rest, placeholder)) {
        out.append(value);
        pos = open + placeholder.size();
        matched = true;
        break;
      }
      maybe = maybe || absl::StartsWith(placeholder, rest);
    }
    if (matched) continue;
    if (maybe) {  // could still become a placeholder: wait for more text
      pos = open;
      break;
    }
    out.push_back('[');
    pos = open + 1;
  }
  pending_.erase(0, pos);
  return out;
}

std::string Restorer::Flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace hr::router
