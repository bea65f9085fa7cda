# Sources of the tokenizer part of moe_engine (paths relative to engine/).
set(MOE_TOKENIZER_SOURCES
  tokenizer/added_tokens.cpp
  tokenizer/bpe.cpp
  tokenizer/byte_level.cpp
  tokenizer/decoder.cpp
  tokenizer/loader.cpp
  tokenizer/normalizer.cpp
  tokenizer/post_processor.cpp
  tokenizer/pre_tokenizer.cpp
  tokenizer/regex.cpp
  tokenizer/stream_decoder.cpp
  tokenizer/tokenizer.cpp
  tokenizer/utf8.cpp
)
