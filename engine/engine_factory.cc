#include "engine/engine_factory.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hr::engine {

absl::StatusOr<Engine> MakeEngine(const EngineSpec& spec) {
  Engine out;
  if (spec.kind == "synthetic") {
    for (int i = 0; i < spec.slots; ++i) {
      out.generators.push_back(NewSyntheticGenerator(spec.synthetic));
    }
    out.description = "synthetic";
    return out;
  }
  if (spec.kind != "llama") {
    return absl::InvalidArgumentError(
        absl::StrCat("the engine must be llama or synthetic, not '", spec.kind, "'"));
  }
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(spec.llama);
  if (!model.ok()) return model.status();
  out.model = *std::move(model);
  absl::StatusOr<std::vector<std::unique_ptr<Generator>>> made =
      out.model->NewGenerators(spec.slots);
  if (!made.ok()) return made.status();
  out.generators = *std::move(made);
  out.description = out.model->description();
  return out;
}

}  // namespace hr::engine
