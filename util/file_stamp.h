#ifndef HYBRID_ROUTER_UTIL_FILE_STAMP_H_
#define HYBRID_ROUTER_UTIL_FILE_STAMP_H_

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace hr::util {

// What identifies a file's version without reading it: a rename over it (as
// config tools do) changes the inode, an edit in place the time or the size. A
// file that cannot be looked at has the empty stamp.
using FileStamp = std::tuple<dev_t, ino_t, int64_t, int64_t, off_t>;

inline FileStamp StampOf(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size};
}

}  // namespace hr::util

#endif  // HYBRID_ROUTER_UTIL_FILE_STAMP_H_
