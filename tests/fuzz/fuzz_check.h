#ifndef HYBRID_ROUTER_TESTS_FUZZ_FUZZ_CHECK_H_
#define HYBRID_ROUTER_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

// A fuzz target's invariant: when it does not hold, says which and aborts, which
// libFuzzer and fuzz_replay report as a failing input.
#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#endif  // HYBRID_ROUTER_TESTS_FUZZ_FUZZ_CHECK_H_
