# Sources of the tokenizer part of moe_engine (paths relative to engine/).
set(MOE_TOKENIZER_SOURCES)
