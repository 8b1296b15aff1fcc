#ifndef HYBRID_ROUTER_ENGINE_ENGINE_FACTORY_H_
#define HYBRID_ROUTER_ENGINE_ENGINE_FACTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/generation.h"
#include "engine/llama_engine.h"
#include "engine/synthetic_engine.h"

namespace hr::engine {

// Which engine a server runs, as its flags say.
struct EngineSpec {
  std::string kind;  // "llama" or "synthetic"
  int slots = 1;     // generators to make
  LlamaOptions llama;
  SyntheticOptions synthetic;
};

// The generators for an EnginePool, and the model they share (null for the
// synthetic engine), which must outlive them.
struct Engine {
  std::unique_ptr<LlamaModel> model;
  std::vector<std::unique_ptr<Generator>> generators;
  std::string description;  // the model's, or "synthetic"
};

inline bool IsKnownEngine(const std::string& kind) {
  return kind == "llama" || kind == "synthetic";
}

// Makes `spec.slots` generators. Errors are LlamaModel::Load's and NewGenerator's;
// InvalidArgument for an unknown kind.
absl::StatusOr<Engine> MakeEngine(const EngineSpec& spec);

}  // namespace hr::engine

#endif  // HYBRID_ROUTER_ENGINE_ENGINE_FACTORY_H_
