#include "util/config_reloader.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace hr::util {

ConfigReloader::ConfigReloader(const std::set<std::string>& files, Load load)
    : load_(std::move(load)) {
  for (const std::string& f : files) stamps_[f] = StampOf(f);
}

void ConfigReloader::Reload(absl::string_view why) {
  absl::MutexLock lock(&mu_);
  ReloadLocked(why);
}

void ConfigReloader::ReloadIfChanged() {
  absl::MutexLock lock(&mu_);
  for (const auto& [file, stamp] : stamps_) {
    if (StampOf(file) != stamp) {
      ReloadLocked(absl::StrCat(file, " changed"));
      return;
    }
  }
}

void ConfigReloader::ReloadLocked(absl::string_view why) {
  // Stamped before reading: a change during the read shows at the next look.
  for (auto& [file, stamp] : stamps_) stamp = StampOf(file);
  std::optional<std::set<std::string>> files = load_(why);
  if (!files.has_value()) return;
  // Files the new version names for the first time are stamped after it read
  // them; those it no longer names are no longer watched.
  std::map<std::string, FileStamp> next;
  for (const std::string& f : *files) {
    auto it = stamps_.find(f);
    next[f] = it != stamps_.end() ? it->second : StampOf(f);
  }
  stamps_ = std::move(next);
}

void ConfigReloader::Watch(absl::Duration interval) {
  if (interval <= absl::ZeroDuration()) return;
  watcher_ = std::thread([this, interval] {
    while (!stop_.WaitForNotificationWithTimeout(interval)) ReloadIfChanged();
  });
}

void ConfigReloader::StopWatching() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace hr::util
