#include "util/flags.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage_config.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hr::util {
namespace {

constexpr int kHelpWidth = 80;

// Whether a flag defined in `path` is one of Abseil's own (--flagfile, --fromenv...).
bool IsAbseilFile(absl::string_view path) { return absl::StrContains(path, "absl/"); }

// Abseil's own usage flags (--helpshort, --helppackage...) list flags from files
// named like the program (hrctl.cc for hrctl) by default, which would leave
// hr-device (device_stub/main.cc) and most others with none.
void ListOwnFlagsInHelp() {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view path) { return !IsAbseilFile(path); };
  absl::SetFlagsUsageConfig(config);
}

// `text` broken at spaces into lines of at most kHelpWidth columns (a longer
// word gets a line of its own), the first starting with `first`, the others
// with `rest`.
std::string Wrap(absl::string_view text, absl::string_view first, absl::string_view rest) {
  std::string out(first);
  size_t line_start = 0;
  bool line_empty = true;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line_empty && out.size() - line_start + 1 + word.size() > kHelpWidth) {
      absl::StrAppend(&out, "\n");
      line_start = out.size();
      absl::StrAppend(&out, rest);
      line_empty = true;
    }
    absl::StrAppend(&out, line_empty ? "" : " ", word);
    line_empty = false;
  }
  absl::StrAppend(&out, "\n");
  return out;
}

// The flag's file as a person finds it in the source tree.
std::string SourcePath(const absl::CommandLineFlag& flag) {
  std::string path = flag.Filename();
#ifdef HR_SOURCE_DIR
  absl::string_view root = absl::StripPrefix(HR_SOURCE_DIR, "/");
  absl::string_view relative = absl::StripPrefix(absl::StripPrefix(path, "/"), root);
  if (relative.size() < path.size() && absl::ConsumePrefix(&relative, "/")) {
    return std::string(relative);
  }
#endif
  return path;
}

std::string DescribeFlag(const absl::CommandLineFlag& flag) {
  std::string value = flag.DefaultValue();
  if (flag.IsOfType<std::string>()) value = absl::StrCat("\"", value, "\"");
  return Wrap(absl::StrCat("--", flag.Name(), " (", flag.Help(), "); default: ", value, ";"),
              "    ", "      ");
}

// Which flags --help lists: the program's own (kOwn), all (kAll), or those whose
// name, help or file contain a text (--help=TEXT); or --version.
struct HelpRequest {
  enum { kNone, kOwn, kAll, kMatching, kVersion } kind = kNone;
  std::string match;
};

HelpRequest FindHelpRequest(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    // Only flags: "help" or "version" can be a word of a prompt.
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) continue;
    if (arg == "help" || arg == "h") return {HelpRequest::kOwn, ""};
    if (arg == "helpfull") return {HelpRequest::kAll, ""};
    if (absl::ConsumePrefix(&arg, "help=")) return {HelpRequest::kMatching, std::string(arg)};
    if (arg == "version") return {HelpRequest::kVersion, ""};
  }
  return {};
}

std::string VersionText(absl::string_view program) {
  absl::string_view build_type = HR_BUILD_TYPE;
#ifdef NDEBUG
  absl::string_view assertions = "off";
#else
  absl::string_view assertions = "on";
#endif
  return absl::StrCat(program, " ", Version(), " (hybrid-router)\n",
                      build_type.empty() ? "no CMake build type" : build_type,
                      " build, assertions ", assertions, "\n");
}

std::string HelpText(absl::string_view program, const HelpRequest& request) {
  // By file, then by name, as Abseil lists them.
  std::map<std::string, std::map<absl::string_view, std::string>> by_file;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->IsRetired()) continue;
    if (request.kind == HelpRequest::kOwn && IsAbseilFile(flag->Filename())) continue;
    if (request.kind == HelpRequest::kMatching &&
        !absl::StrContains(flag->Name(), request.match) &&
        !absl::StrContains(flag->Help(), request.match) &&
        !absl::StrContains(SourcePath(*flag), request.match)) {
      continue;
    }
    by_file[SourcePath(*flag)][name] = DescribeFlag(*flag);
  }
  std::string text = absl::StrCat(program, ": ", absl::ProgramUsageMessage(), "\n");
  for (const auto& [file, flags] : by_file) {
    absl::StrAppend(&text, "\n  Flags from ", file, ":\n");
    for (const auto& [name, description] : flags) absl::StrAppend(&text, description);
  }
  if (request.kind == HelpRequest::kMatching && by_file.empty()) {
    absl::StrAppend(&text, "\nNo flag's name, description or file contains \"", request.match,
                    "\".\n");
  }
  if (request.kind == HelpRequest::kOwn) {
    absl::StrAppend(&text, "\n",
                    Wrap("Try --helpfull to list Abseil's flags too (--flagfile, --fromenv...), "
                         "or --help=TEXT for the flags whose name, description or file "
                         "contains TEXT.",
                         "", ""));
  }
  return text;
}

}  // namespace

absl::string_view Version() { return HR_VERSION; }

std::vector<char*> ParseCommandLine(int argc, char** argv, absl::string_view usage) {
  ListOwnFlagsInHelp();
  absl::SetProgramUsageMessage(usage);
  if (HelpRequest request = FindHelpRequest(argc, argv); request.kind != HelpRequest::kNone) {
    absl::string_view program = argc > 0 ? argv[0] : "";
    if (size_t slash = program.rfind('/'); slash != absl::string_view::npos) {
      program.remove_prefix(slash + 1);
    }
    const std::string text =
        request.kind == HelpRequest::kVersion ? VersionText(program) : HelpText(program, request);
    std::fputs(text.c_str(), stdout);
    std::exit(0);
  }
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace hr::util
