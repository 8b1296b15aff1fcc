#ifndef HYBRID_ROUTER_ENGINE_LLAMA_ENGINE_H_
#define HYBRID_ROUTER_ENGINE_LLAMA_ENGINE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/generation.h"

struct llama_model;

namespace hr::engine {

struct LlamaOptions {
  std::string model_path;  // a GGUF file
  int context_tokens = 2048;  // per context: prompt and answer together
  int threads = 1;            // per context
};

// A GGUF model loaded with llama.cpp, shared by the generators made from it. The
// model's own chat template formats the conversation (ChatML when the file has
// none). Thread-safe; must outlive its generators.
class LlamaModel {
 public:
  // Loads the model. NotFound for a missing file, InvalidArgument for a file that
  // llama.cpp cannot load.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const LlamaOptions& options);
  ~LlamaModel();

  // A generator with its own llama.cpp context. ResourceExhausted when the
  // context cannot be allocated.
  absl::StatusOr<std::unique_ptr<Generator>> NewGenerator() const;

  // `n` generators, for an EnginePool.
  absl::StatusOr<std::vector<std::unique_ptr<Generator>>> NewGenerators(int n) const;

  const std::string& description() const { return description_; }

 private:
  LlamaModel() = default;
  LlamaOptions options_;
  llama_model* model_ = nullptr;
  std::string chat_template_;
  std::string description_;
};

}  // namespace hr::engine

#endif  // HYBRID_ROUTER_ENGINE_LLAMA_ENGINE_H_
