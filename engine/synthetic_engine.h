#ifndef HYBRID_ROUTER_ENGINE_SYNTHETIC_ENGINE_H_
#define HYBRID_ROUTER_ENGINE_SYNTHETIC_ENGINE_H_

#include <memory>

#include "engine/generation.h"

namespace hr::engine {

struct SyntheticOptions {
  // Tokens per second per stream; 0 means as fast as possible.
  double tokens_per_second = 200;
  // Answer with the last user message, piece by piece, instead of generated words
  // (for tests that check what reached the engine).
  bool echo = false;
};

// A synthetic engine for load tests and for tests of the code around a model: it
// streams a deterministic answer (words chosen from the prompt's hash and the
// seed, or an echo) at a fixed rate. It understands nothing; it is not a model.
std::unique_ptr<Generator> NewSyntheticGenerator(const SyntheticOptions& options);

}  // namespace hr::engine

#endif  // HYBRID_ROUTER_ENGINE_SYNTHETIC_ENGINE_H_
