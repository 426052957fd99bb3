/* Hugging Face model directories: config.json plus model.safetensors, or shards listed in
 * model.safetensors.index.json. Reading converts F32/BF16/F16 to fp32; writing produces a
 * directory that transformers loads unchanged. */
#pragma once
#include "model.h"

/* Parses DIR/config.json into c. DR_ERR names the file and the field. */
int model_config_load(const char *dir, ModelConfig *c);
/* Reads the weights of DIR into m (initialised with a matching config). */
int model_weights_load(Model *m, const char *dir);
/* model_config_load + model_init_precision + model_weights_load, activations for B x T tokens
 * (T is clamped to max_position_embeddings); bf16_attention NULL for an fp32 model, else the
 * attention of a bf16 one ("flash" or "cudnn"). */
int model_load(Model *m, const char *dir, Backend be, int B, int T, const char *bf16_attention);
/* The same with model_init_precision's keep (MODEL_RECOMPUTE for gradient checkpointing). */
int model_load_keep(Model *m, const char *dir, Backend be, int B, int T, int keep,
                    const char *bf16_attention);
/* Refuses sequences longer than a sliding-window attention would allow. */
int model_check_seq_len(const ModelConfig *c, int T, const char *what);
/* Refuses what the backend cannot run, before anything is allocated: on a GPU a head dim its
 * attention kernels do not take (a multiple of 4 up to 256); on the CPU a model and B x T
 * activations that cannot fit this machine's memory and swap (a lower bound of what
 * model_init allocates). */
int model_check_runnable(const ModelConfig *c, Backend be, int B, int T, const char *what);
/* Writes DIR/config.json and DIR/model.safetensors; bf16 selects BF16 storage. */
int model_save(const Model *m, const char *dir, int bf16);
/* The same with the parameters already in host memory (model_params_to_host's layout). */
int model_save_host(const Model *m, const float *host, const char *dir, int bf16);
/* The files beside the weights that other tools need to use DST as a model: the tokenizer
 * (tokenizer.json and its config, the vocab and merges or sentencepiece files, added and
 * special tokens), the chat template and generation_config.json; each that SRC holds is
 * copied atomically. DR_OK or DR_ERR naming the file. */
int model_copy_side_files(const char *src, const char *dst);
