#ifndef HYBRID_ROUTER_UTIL_CONFIG_RELOADER_H_
#define HYBRID_ROUTER_UTIL_CONFIG_RELOADER_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "util/file_stamp.h"

namespace hr::util {

// Reloads a configuration when asked (on SIGHUP, say) and when a file it was read
// from changes, as servers do with their config files: one reload at a time, and
// an invalid version keeps the one in force (and its files watched). Thread-safe.
class ConfigReloader {
 public:
  // Loads the configuration anew (`why` says what prompted it, for the log) and,
  // when it is valid, puts it in force and returns the files it was read from;
  // nullopt when it is not (the load says why).
  using Load = std::function<std::optional<std::set<std::string>>(absl::string_view why)>;

  // `files`: those the configuration in force was read from.
  ConfigReloader(const std::set<std::string>& files, Load load);
  ~ConfigReloader() { StopWatching(); }
  ConfigReloader(const ConfigReloader&) = delete;
  ConfigReloader& operator=(const ConfigReloader&) = delete;

  void Reload(absl::string_view why);
  // Reloads if a watched file changed since the last load.
  void ReloadIfChanged();

  // Calls ReloadIfChanged every `interval` on a thread of its own until
  // StopWatching; a zero interval watches nothing. Call at most once.
  void Watch(absl::Duration interval);
  void StopWatching();

 private:
  void ReloadLocked(absl::string_view why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Load load_;
  absl::Mutex mu_;
  std::map<std::string, FileStamp> stamps_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread watcher_;
};

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_CONFIG_RELOADER_H_
