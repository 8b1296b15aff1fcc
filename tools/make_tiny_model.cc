// hr-make-tiny-model: writes a tiny Qwen2-architecture GGUF with random weights and
// a real tokenizer and chat template (copied from a llama.cpp vocabulary file), so
// that tests and the demo run the real llama.cpp runtime without downloading a
// model. Its text is gibberish: it is for exercising the runtime, not for answers.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "ggml.h"
#include "gguf.h"
#include "util/flags.h"

ABSL_FLAG(std::string, vocab, "", "llama.cpp vocabulary GGUF (models/ggml-vocab-qwen2.gguf)");
ABSL_FLAG(std::string, out, "", "where to write the model");
ABSL_FLAG(int, embd, 64, "embedding width");
ABSL_FLAG(int, layers, 2, "transformer blocks");
ABSL_FLAG(int, heads, 4, "attention heads");
ABSL_FLAG(int, kv_heads, 2, "key/value heads");
ABSL_FLAG(int, ff, 192, "feed-forward width");
ABSL_FLAG(uint32_t, seed, 1234, "random seed (the same seed gives the same file)");

namespace {

// A Qwen2 ChatML template, for a vocabulary file that carries none.
constexpr char kChatMl[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct Builder {
  ggml_context* ctx;
  gguf_context* gguf;
  std::mt19937 rng;

  void Add(const std::string& name, ggml_type type, int64_t ne0, int64_t ne1, float stddev,
           float constant = 0) {
    ggml_tensor* t = ne1 > 0 ? ggml_new_tensor_2d(ctx, type, ne0, ne1)
                             : ggml_new_tensor_1d(ctx, type, ne0);
    ggml_set_name(t, name.c_str());
    int64_t n = ggml_nelements(t);
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> values(n);
    for (float& v : values) v = stddev > 0 ? dist(rng) : constant;
    if (type == GGML_TYPE_F16) {
      ggml_fp32_to_fp16_row(values.data(), static_cast<ggml_fp16_t*>(t->data), n);
    } else {
      std::copy(values.begin(), values.end(), static_cast<float*>(t->data));
    }
    gguf_add_tensor(gguf, t);
  }
};

}  // namespace

int main(int argc, char** argv) {
  hr::util::ParseCommandLine(
      argc, argv,
      "Writes a tiny random-weight Qwen2 GGUF for tests.\n"
      "Usage: hr-make-tiny-model --vocab ggml-vocab-qwen2.gguf --out tiny.gguf");
  const std::string vocab_path = absl::GetFlag(FLAGS_vocab);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (vocab_path.empty() || out_path.empty()) {
    std::fprintf(stderr, "error: --vocab and --out are required (see --help)\n");
    return 2;
  }
  gguf_init_params params = {/*no_alloc=*/true, /*ctx=*/nullptr};
  gguf_context* vocab = gguf_init_from_file(vocab_path.c_str(), params);
  if (vocab == nullptr) {
    std::fprintf(stderr, "error: cannot read %s as GGUF\n", vocab_path.c_str());
    return 1;
  }
  int64_t tokens_key = gguf_find_key(vocab, "tokenizer.ggml.tokens");
  if (tokens_key < 0) {
    std::fprintf(stderr, "error: %s has no tokenizer.ggml.tokens\n", vocab_path.c_str());
    return 1;
  }
  const int64_t n_vocab = static_cast<int64_t>(gguf_get_arr_n(vocab, tokens_key));
  const int64_t embd = absl::GetFlag(FLAGS_embd), layers = absl::GetFlag(FLAGS_layers),
                heads = absl::GetFlag(FLAGS_heads), kv_heads = absl::GetFlag(FLAGS_kv_heads),
                ff = absl::GetFlag(FLAGS_ff);
  if (embd % heads != 0 || heads % kv_heads != 0) {
    std::fprintf(stderr, "error: --embd must divide by --heads, --heads by --kv_heads\n");
    return 2;
  }
  const int64_t embd_kv = embd / heads * kv_heads;

  gguf_context* out = gguf_init_empty();
  gguf_set_kv(out, vocab);  // tokenizer.* and whatever else the vocabulary carries
  gguf_set_val_str(out, "general.architecture", "qwen2");
  gguf_set_val_str(out, "general.name", "hybrid-router tiny random qwen2 (gibberish)");
  gguf_set_val_u32(out, "qwen2.context_length", 4096);
  gguf_set_val_u32(out, "qwen2.embedding_length", embd);
  gguf_set_val_u32(out, "qwen2.block_count", layers);
  gguf_set_val_u32(out, "qwen2.feed_forward_length", ff);
  gguf_set_val_u32(out, "qwen2.attention.head_count", heads);
  gguf_set_val_u32(out, "qwen2.attention.head_count_kv", kv_heads);
  gguf_set_val_f32(out, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  gguf_set_val_f32(out, "qwen2.rope.freq_base", 1000000.0f);
  if (gguf_find_key(out, "tokenizer.chat_template") < 0) {
    gguf_set_val_str(out, "tokenizer.chat_template", kChatMl);
  }

  size_t bytes = n_vocab * embd * 2 + layers * (4 * embd * embd + 3 * embd * ff + 8 * embd) * 4 +
                 (1 << 24);
  ggml_init_params gp = {bytes, nullptr, /*no_alloc=*/false};
  Builder b{ggml_init(gp), out, std::mt19937(absl::GetFlag(FLAGS_seed))};
  b.Add("token_embd.weight", GGML_TYPE_F16, embd, n_vocab, 0.5f);
  b.Add("output_norm.weight", GGML_TYPE_F32, embd, 0, 0, 1.0f);
  for (int64_t i = 0; i < layers; ++i) {
    std::string p = absl::StrCat("blk.", i, ".");
    b.Add(p + "attn_norm.weight", GGML_TYPE_F32, embd, 0, 0, 1.0f);
    b.Add(p + "attn_q.weight", GGML_TYPE_F32, embd, embd, 0.1f);
    b.Add(p + "attn_k.weight", GGML_TYPE_F32, embd, embd_kv, 0.1f);
    b.Add(p + "attn_v.weight", GGML_TYPE_F32, embd, embd_kv, 0.1f);
    b.Add(p + "attn_q.bias", GGML_TYPE_F32, embd, 0, 0.02f);
    b.Add(p + "attn_k.bias", GGML_TYPE_F32, embd_kv, 0, 0.02f);
    b.Add(p + "attn_v.bias", GGML_TYPE_F32, embd_kv, 0, 0.02f);
    b.Add(p + "attn_output.weight", GGML_TYPE_F32, embd, embd, 0.1f);
    b.Add(p + "ffn_norm.weight", GGML_TYPE_F32, embd, 0, 0, 1.0f);
    b.Add(p + "ffn_gate.weight", GGML_TYPE_F32, embd, ff, 0.1f);
    b.Add(p + "ffn_up.weight", GGML_TYPE_F32, embd, ff, 0.1f);
    b.Add(p + "ffn_down.weight", GGML_TYPE_F32, ff, embd, 0.1f);
  }
  std::string tmp = out_path + ".tmp";
  if (!gguf_write_to_file(out, tmp.c_str(), false) || std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    std::fprintf(stderr, "error: cannot write %s\n", out_path.c_str());
    return 1;
  }
  std::printf("wrote %s: qwen2, %lld-token vocabulary, %lld layers, width %lld\n",
              out_path.c_str(), static_cast<long long>(n_vocab),
              static_cast<long long>(layers), static_cast<long long>(embd));
  ggml_free(b.ctx);
  gguf_free(out);
  gguf_free(vocab);
  return 0;
}
