#include "engine/llama_engine.h"

#include <sys/stat.h>

#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "llama.h"
#include "spdlog/spdlog.h"
#include "util/log_format.h"

namespace hr::engine {
namespace {

// llama.cpp logs go to spdlog at debug level (they never contain prompt text).
void LogToSpdlog(ggml_log_level level, const char* text, void*) {
  absl::string_view line = absl::StripTrailingAsciiWhitespace(text);
  if (line.empty()) return;
  if (level == GGML_LOG_LEVEL_ERROR) {
    spdlog::warn("llama.cpp: {}", line);
  } else if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("llama.cpp: {}", line);
  }
}

void InitBackendOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(LogToSpdlog, nullptr);
    llama_backend_init();
  });
}

// ChatML, the format of Qwen models, for files that carry no template.
constexpr char kChatMlTemplate[] = "chatml";

class LlamaGenerator : public Generator {
 public:
  LlamaGenerator(llama_model* model, llama_context* ctx, const std::string* tmpl)
      : vocab_(llama_model_get_vocab(model)), ctx_(ctx), tmpl_(tmpl) {}
  ~LlamaGenerator() override { llama_free(ctx_); }

  absl::StatusOr<GenerationResult> Generate(GenerationJob& job) override {
    absl::StatusOr<std::vector<llama_token>> prompt = Tokenize(job);
    if (!prompt.ok()) return prompt.status();
    const int n_ctx = static_cast<int>(llama_n_ctx(ctx_));
    const int n_prompt = static_cast<int>(prompt->size());
    if (n_prompt + 1 > n_ctx) {
      return absl::InvalidArgumentError(absl::StrCat(
          "messages: the prompt is ", n_prompt, " tokens; the local model's context holds ",
          n_ctx));
    }
    const int max_tokens = std::min(job.max_tokens, n_ctx - n_prompt);

    llama_memory_clear(llama_get_memory(ctx_), true);
    // Decode the prompt in batches of at most n_batch tokens.
    const int n_batch = static_cast<int>(llama_n_batch(ctx_));
    for (int i = 0; i < n_prompt; i += n_batch) {
      if (absl::Status s = job.CheckContinue(); !s.ok()) return s;
      int n = std::min(n_batch, n_prompt - i);
      if (llama_decode(ctx_, llama_batch_get_one(prompt->data() + i, n)) != 0) {
        return absl::InternalError("llama_decode failed on the prompt");
      }
    }

    std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> sampler(
        llama_sampler_chain_init(llama_sampler_chain_default_params()), llama_sampler_free);
    if (job.temperature <= 0) {
      llama_sampler_chain_add(sampler.get(), llama_sampler_init_greedy());
    } else {
      llama_sampler_chain_add(sampler.get(), llama_sampler_init_top_k(40));
      llama_sampler_chain_add(sampler.get(), llama_sampler_init_top_p(0.95f, 1));
      llama_sampler_chain_add(sampler.get(), llama_sampler_init_temp(job.temperature));
      llama_sampler_chain_add(sampler.get(),
                              llama_sampler_init_dist(job.seed == 0 ? 42 : job.seed));
    }

    GenerationResult result;
    result.prompt_tokens = n_prompt;
    result.finish_reason = "max_tokens";
    TextAssembler text(job.stop);
    char piece[256];
    for (int i = 0; i < max_tokens; ++i) {
      if (absl::Status s = job.CheckContinue(); !s.ok()) return s;
      llama_token token = llama_sampler_sample(sampler.get(), ctx_, -1);
      if (llama_vocab_is_eog(vocab_, token)) {
        result.finish_reason = "eos";
        break;
      }
      ++result.completion_tokens;
      job.tokens_generated.fetch_add(1, std::memory_order_relaxed);
      int len = llama_token_to_piece(vocab_, token, piece, sizeof(piece), 0, false);
      bool stopped = false;
      if (len > 0) {
        std::string out = text.Add(absl::string_view(piece, len), &stopped);
        if (!out.empty()) job.on_text(out);
      }
      if (stopped) {
        result.finish_reason = "stop_string";
        return result;
      }
      if (i + 1 < max_tokens && llama_decode(ctx_, llama_batch_get_one(&token, 1)) != 0) {
        return absl::InternalError("llama_decode failed during generation");
      }
    }
    std::string rest = text.Finish();
    if (!rest.empty()) job.on_text(rest);
    return result;
  }

 private:
  // Formats the conversation with the model's chat template and tokenizes it so
  // that only the template's own markers become control tokens. Message text is
  // tokenized as text: a message spelling "<|im_end|>" cannot end its turn and go
  // on as another role. Each message is put in the template as a placeholder that
  // no message contains, and the formatted text is tokenized piece by piece.
  absl::StatusOr<std::vector<llama_token>> Tokenize(const GenerationJob& job) {
    std::string open = "[[hr-message-";
    auto in_a_message = [&job](absl::string_view s) {
      for (const ChatTurn& t : job.messages) {
        if (absl::StrContains(t.content, s) || absl::StrContains(t.role, s)) return true;
      }
      return false;
    };
    while (in_a_message(open)) open += '#';
    constexpr absl::string_view kClose = "]]";

    std::vector<std::string> placeholders;
    placeholders.reserve(job.messages.size());
    std::vector<llama_chat_message> chat;
    chat.reserve(job.messages.size());
    for (size_t i = 0; i < job.messages.size(); ++i) {
      placeholders.push_back(absl::StrCat(open, i, kClose));
    }
    for (size_t i = 0; i < job.messages.size(); ++i) {
      chat.push_back({job.messages[i].role.c_str(), placeholders[i].c_str()});
    }
    std::string formatted(64 * chat.size() + 256, '\0');
    int n = llama_chat_apply_template(tmpl_->c_str(), chat.data(), chat.size(), true,
                                      formatted.data(), static_cast<int>(formatted.size()));
    if (n > static_cast<int>(formatted.size())) {
      formatted.resize(n);
      n = llama_chat_apply_template(tmpl_->c_str(), chat.data(), chat.size(), true,
                                    formatted.data(), n);
    }
    if (n < 0) return absl::InternalError("the model's chat template is not supported");
    formatted.resize(n);

    std::vector<llama_token> tokens;
    bool first = true;
    auto append = [&](absl::string_view text, bool template_text) {
      if (text.empty()) return true;
      // Only the first piece gets the model's start-of-text token, if it has one.
      const int need = -llama_tokenize(vocab_, text.data(), static_cast<int>(text.size()), nullptr,
                                       0, first, template_text);
      const size_t at = tokens.size();
      tokens.resize(at + std::max(need, 0));
      const int got = llama_tokenize(vocab_, text.data(), static_cast<int>(text.size()),
                                     tokens.data() + at, std::max(need, 0), first, template_text);
      first = false;
      if (got < 0) return false;
      tokens.resize(at + got);
      return true;
    };
    absl::string_view rest = formatted;
    for (size_t p = rest.find(open); p != absl::string_view::npos; p = rest.find(open)) {
      absl::string_view after = rest.substr(p + open.size());
      const size_t close = after.find(kClose);
      size_t index = 0;
      if (close == absl::string_view::npos || !absl::SimpleAtoi(after.substr(0, close), &index) ||
          index >= job.messages.size()) {
        return absl::InternalError("the model's chat template altered the messages");
      }
      if (!append(rest.substr(0, p), true) || !append(job.messages[index].content, false)) {
        return absl::InternalError("tokenization failed");
      }
      rest = after.substr(close + kClose.size());
    }
    if (!append(rest, true)) return absl::InternalError("tokenization failed");
    return tokens;
  }

  const llama_vocab* vocab_;
  llama_context* ctx_;
  const std::string* tmpl_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const LlamaOptions& options) {
  struct stat st;
  if (stat(options.model_path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("model file not found: ", options.model_path));
  }
  InitBackendOnce();
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(options.model_path.c_str(), params);
  if (model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("llama.cpp cannot load ", options.model_path, " as a GGUF model"));
  }
  // A context beyond what the model was trained for answers nothing well, and
  // one far beyond it takes more memory than the machine has when the slots
  // allocate it (killed rather than refused).
  if (const int trained = llama_model_n_ctx_train(model);
      trained > 0 && options.context_tokens > trained) {
    llama_model_free(model);
    return absl::InvalidArgumentError(
        absl::StrCat("a context of ", options.context_tokens, " tokens (--context_tokens) is more ",
                     "than ", options.model_path, " was trained for (", trained, " tokens)"));
  }
  auto out = std::unique_ptr<LlamaModel>(new LlamaModel());
  out->options_ = options;
  out->model_ = model;
  const char* tmpl = llama_model_chat_template(model, nullptr);
  out->chat_template_ = tmpl != nullptr ? tmpl : kChatMlTemplate;
  char desc[256];
  llama_model_desc(model, desc, sizeof(desc));
  out->description_ = desc;
  return out;
}

LlamaModel::~LlamaModel() {
  if (model_ != nullptr) llama_model_free(model_);
}

absl::StatusOr<std::unique_ptr<Generator>> LlamaModel::NewGenerator() const {
  llama_context_params params = llama_context_default_params();
  params.n_ctx = options_.context_tokens;
  params.n_batch = std::min(options_.context_tokens, 512);
  params.n_ubatch = params.n_batch;
  params.n_seq_max = 1;
  params.n_threads = options_.threads;
  params.n_threads_batch = options_.threads;
  params.no_perf = true;
  llama_context* ctx = llama_init_from_model(model_, params);
  if (ctx == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a llama.cpp context");
  }
  return std::unique_ptr<Generator>(new LlamaGenerator(model_, ctx, &chat_template_));
}

absl::StatusOr<std::vector<std::unique_ptr<Generator>>> LlamaModel::NewGenerators(int n) const {
  std::vector<std::unique_ptr<Generator>> out;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<std::unique_ptr<Generator>> g = NewGenerator();
    if (!g.ok()) return g.status();
    out.push_back(*std::move(g));
  }
  return out;
}

}  // namespace hr::engine
