// llama_speed: llama.cpp's own speed on a model, called directly (no router, no
// gRPC), to set next to the tokens per second measured through hr-device.
//
// Each run does what one local request does: apply the model's chat template to a
// prompt, decode it, then sample greedily up to --tokens new tokens (stopping at
// end of generation, like the router). It prints prompt and generation speed and
// the whole-request rate (generated tokens / wall time of the run).
//
//   build/bin/llama_speed --model build/models/tiny-qwen2.gguf --threads 2 --tokens 32
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/clock.h"
#include "llama.h"
#include "util/flags.h"

ABSL_FLAG(std::string, model, "build/models/tiny-qwen2.gguf", "GGUF model");
ABSL_FLAG(int, threads, 2, "CPU threads (as hr-device's --local_threads)");
ABSL_FLAG(int, context_tokens, 2048, "context size (as hr-device's --context_tokens)");
ABSL_FLAG(int, tokens, 32, "tokens to generate per run (as a request's max_tokens)");
ABSL_FLAG(int, runs, 20, "runs after one warm-up run");
ABSL_FLAG(std::string, prompt, "What is the capital of France?", "the user message");

namespace {

void Quiet(ggml_log_level, const char*, void*) {}

struct RunResult {
  int prompt_tokens = 0;
  int generated = 0;
  absl::Duration prompt_time;
  absl::Duration generate_time;
};

bool Run(llama_context* ctx, const llama_vocab* vocab, const std::vector<llama_token>& prompt,
         int max_tokens, RunResult* out) {
  llama_memory_clear(llama_get_memory(ctx), true);
  std::vector<llama_token> tokens = prompt;
  const absl::Time t0 = absl::Now();
  const int n_batch = static_cast<int>(llama_n_batch(ctx));
  for (size_t i = 0; i < tokens.size(); i += n_batch) {
    int n = std::min<int>(n_batch, static_cast<int>(tokens.size() - i));
    if (llama_decode(ctx, llama_batch_get_one(tokens.data() + i, n)) != 0) return false;
  }
  const absl::Time t1 = absl::Now();
  llama_sampler* sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(sampler, llama_sampler_init_greedy());
  int generated = 0;
  for (int i = 0; i < max_tokens; ++i) {
    llama_token token = llama_sampler_sample(sampler, ctx, -1);
    if (llama_vocab_is_eog(vocab, token)) break;  // not counted, as the router does
    ++generated;
    if (i + 1 < max_tokens && llama_decode(ctx, llama_batch_get_one(&token, 1)) != 0) {
      llama_sampler_free(sampler);
      return false;
    }
  }
  llama_sampler_free(sampler);
  out->prompt_tokens = static_cast<int>(prompt.size());
  out->generated = generated;
  out->prompt_time = t1 - t0;
  out->generate_time = absl::Now() - t1;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  hr::util::ParseCommandLine(
      argc, argv,
      "llama.cpp's own speed on a model, without the router: prompt, generation and\n"
      "whole-request tokens per second over --runs runs.\n"
      "Usage: llama_speed --model m.gguf [--threads 2] [--tokens 32] [--runs 20]");
  llama_log_set(Quiet, nullptr);
  llama_backend_init();

  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(absl::GetFlag(FLAGS_model).c_str(), mp);
  if (model == nullptr) {
    std::fprintf(stderr, "error: cannot load %s\n", absl::GetFlag(FLAGS_model).c_str());
    return 1;
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = absl::GetFlag(FLAGS_context_tokens);
  cp.n_threads = absl::GetFlag(FLAGS_threads);
  cp.n_threads_batch = absl::GetFlag(FLAGS_threads);
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) {
    std::fprintf(stderr, "error: cannot create a context\n");
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);

  // The chat template, as a request's single user message.
  const std::string user = absl::GetFlag(FLAGS_prompt);
  const char* tmpl = llama_model_chat_template(model, nullptr);
  llama_chat_message msg{"user", user.c_str()};
  std::vector<char> formatted(user.size() * 2 + 512);
  int n = llama_chat_apply_template(tmpl ? tmpl : "chatml", &msg, 1, true, formatted.data(),
                                    static_cast<int32_t>(formatted.size()));
  if (n > static_cast<int>(formatted.size())) {
    formatted.resize(n);
    n = llama_chat_apply_template(tmpl ? tmpl : "chatml", &msg, 1, true, formatted.data(), n);
  }
  if (n < 0) {
    std::fprintf(stderr, "error: cannot apply the chat template\n");
    return 1;
  }
  int n_tokens = -llama_tokenize(vocab, formatted.data(), n, nullptr, 0, true, true);
  std::vector<llama_token> prompt(std::max(n_tokens, 0));
  llama_tokenize(vocab, formatted.data(), n, prompt.data(), n_tokens, true, true);

  char desc[128];
  llama_model_desc(model, desc, sizeof(desc));
  std::printf("model %s (%s), %d threads, prompt %zu tokens, up to %d new tokens, %d runs\n",
              absl::GetFlag(FLAGS_model).c_str(), desc, cp.n_threads, prompt.size(),
              absl::GetFlag(FLAGS_tokens), absl::GetFlag(FLAGS_runs));

  RunResult warm;
  if (!Run(ctx, vocab, prompt, absl::GetFlag(FLAGS_tokens), &warm)) {
    std::fprintf(stderr, "error: llama_decode failed\n");
    return 1;
  }
  int64_t prompt_tokens = 0, generated = 0;
  absl::Duration prompt_time, generate_time;
  for (int r = 0; r < absl::GetFlag(FLAGS_runs); ++r) {
    RunResult res;
    if (!Run(ctx, vocab, prompt, absl::GetFlag(FLAGS_tokens), &res)) {
      std::fprintf(stderr, "error: llama_decode failed\n");
      return 1;
    }
    prompt_tokens += res.prompt_tokens;
    generated += res.generated;
    prompt_time += res.prompt_time;
    generate_time += res.generate_time;
  }
  const double pt = absl::ToDoubleSeconds(prompt_time);
  const double gt = absl::ToDoubleSeconds(generate_time);
  std::printf("prompt:     %8.1f tokens/s\n", prompt_tokens / pt);
  std::printf("generation: %8.1f tokens/s (%.1f tokens per run)\n", generated / gt,
              static_cast<double>(generated) / absl::GetFlag(FLAGS_runs));
  std::printf("request:    %8.1f generated tokens/s of wall time (prompt included)\n",
              generated / (pt + gt));
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
