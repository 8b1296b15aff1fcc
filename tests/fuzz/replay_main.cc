// Runs a fuzz target's LLVMFuzzerTestOneInput without libFuzzer, for the test
// suite: every file of the given corpus directories, then `--mutations N` inputs
// made from them by a fixed-seed random mutation (byte flips, inserts, deletes,
// splices), so the suite also tries inputs nobody wrote down. A failed check
// aborts with its message, and the input is saved to fuzz-crash-input.
//
//   fuzz_replay [--mutations N] DIR...
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

const std::string* current = nullptr;  // the input being run

// On a failed check (abort) or a crash: save the input, then die as before.
void SaveInput(int sig) {
  if (current != nullptr) {
    int fd = open("fuzz-crash-input", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t unused = write(fd, current->data(), current->size());
      (void)unused;
      close(fd);
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void Run(const std::string& input) {
  current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  current = nullptr;
}

std::string Mutate(const std::vector<std::string>& corpus, std::mt19937_64& rng) {
  std::string s = corpus[rng() % corpus.size()];
  const int edits = 1 + static_cast<int>(rng() % 8);
  for (int e = 0; e < edits; ++e) {
    const size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 5) {
      case 0:  // flip a byte
        if (at < s.size()) s[at] = static_cast<char>(rng());
        break;
      case 1:  // insert a byte, often a structural one
        s.insert(s.begin() + at, "\x1e[]@.-0:\xe4\xb8\xad"[rng() % 12]);
        break;
      case 2:  // delete a run
        if (at < s.size()) s.erase(at, 1 + rng() % 8);
        break;
      case 3: {  // splice in a piece of another input
        const std::string& other = corpus[rng() % corpus.size()];
        if (!other.empty()) {
          const size_t from = rng() % other.size();
          s.insert(at, other.substr(from, 1 + rng() % 32));
        }
        break;
      }
      default:  // repeat a piece
        if (at < s.size()) s.insert(at, s.substr(at, 1 + rng() % 16));
        break;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 0;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) {
      mutations = std::strtol(argv[++i], nullptr, 10);
      continue;
    }
    std::vector<std::filesystem::path> files;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(argv[i], error)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    if (error) {
      std::fprintf(stderr, "error: cannot read %s: %s\n", argv[i], error.message().c_str());
      return 2;
    }
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      std::ifstream f(path, std::ios::binary);
      corpus.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "usage: fuzz_replay [--mutations N] DIR...  (no inputs found)\n");
    return 2;
  }
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) signal(sig, SaveInput);
  for (const std::string& input : corpus) Run(input);
  std::mt19937_64 rng(1);
  for (long i = 0; i < mutations; ++i) Run(Mutate(corpus, rng));
  std::printf("%zu corpus inputs and %ld mutations ran without a failed check\n", corpus.size(),
              mutations);
  return 0;
}
