#!/usr/bin/env node
// Rebuilds the DeepSeek LLM / DeepSeekMoE tokenizer.json (vocab 100,000 + 15 added tokens)
// from llama.cpp's models/ggml-vocab-deepseek-llm.gguf, which holds the published vocab and
// merges verbatim. Pre-tokenizer, normalizer, post-processor and decoder are the published
// ones (../../../../shared/model-spec.md §2). The [PAD…] ids that llama.cpp appends to reach the
// model's 102,400 rows are not tokens of the HF tokenizer and are left out.
// Usage: node gguf_to_tokenizer_json.js ggml-vocab-deepseek-llm.gguf OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');

function readGgufKv(file) {
  const buf = fs.readFileSync(file);
  let off = 0;
  const u32 = () => { const v = buf.readUInt32LE(off); off += 4; return v; };
  const u64 = () => { const v = Number(buf.readBigUInt64LE(off)); off += 8; return v; };
  const str = () => { const n = u64(); const s = buf.toString('utf8', off, off + n); off += n; return s; };
  const scalar = {
    0: () => buf.readUInt8(off++), 1: () => buf.readInt8(off++),
    2: () => { const v = buf.readUInt16LE(off); off += 2; return v; },
    3: () => { const v = buf.readInt16LE(off); off += 2; return v; },
    4: u32, 5: () => { const v = buf.readInt32LE(off); off += 4; return v; },
    6: () => { const v = buf.readFloatLE(off); off += 4; return v; },
    7: () => buf.readUInt8(off++) !== 0, 8: str, 10: u64,
    11: () => { const v = Number(buf.readBigInt64LE(off)); off += 8; return v; },
    12: () => { const v = buf.readDoubleLE(off); off += 8; return v; },
  };
  const value = (t) => {
    if (t === 9) {
      const et = u32(); const n = u64(); const a = new Array(n);
      for (let i = 0; i < n; i++) a[i] = value(et);
      return a;
    }
    if (!scalar[t]) throw new Error(`unknown GGUF value type ${t}`);
    return scalar[t]();
  };
  if (buf.toString('ascii', 0, 4) !== 'GGUF') throw new Error(`${file}: not a GGUF file`);
  off = 4; u32(); u64();
  const nkv = u64();
  const kv = {};
  for (let i = 0; i < nkv; i++) { const k = str(); kv[k] = value(u32()); }
  return kv;
}

const split = (regex) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
// Six code points of this class (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) change under
// Unicode NFC; they are written as escapes so that no editor or copy can normalise them.
const LETTERS = '\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+';
const PRE_TOKENIZER = {
  type: 'Sequence',
  pretokenizers: [
    split('[\r\n]'),
    split(LETTERS),
    split('\\s?[!-/:-~！-／：-～‘-‟　-。]+'),
    split('\\s+$'),
    split('[一-龥ࠀ-一가-퟿]+'),
    { type: 'Digits', individual_digits: true },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
};

function main() {
  const [gguf, outDir] = process.argv.slice(2);
  if (!gguf || !outDir) { console.error('usage: gguf_to_tokenizer_json.js FILE.gguf OUT_DIR'); process.exit(2); }
  const kv = readGgufKv(gguf);
  if (kv['tokenizer.ggml.model'] !== 'gpt2' || kv['tokenizer.ggml.pre'] !== 'deepseek-llm')
    throw new Error('not the deepseek-llm BPE vocab');
  const tokens = kv['tokenizer.ggml.tokens'];
  const types = kv['tokenizer.ggml.token_type'];
  const vocab = {};
  const added = [];
  for (let id = 0; id < tokens.length; id++) {
    const t = types[id];
    if (t === 1) vocab[tokens[id]] = id;                       // normal
    else if (t === 3 || (t === 4 && !/^\[PAD\d+\]$/.test(tokens[id]))) // control / user-defined
      added.push({ id, content: tokens[id], single_word: false, lstrip: false, rstrip: false,
                   normalized: t !== 3, special: t === 3 });
  }
  const tokenizer = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [] },
    pre_tokenizer: PRE_TOKENIZER,
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
             vocab, merges: kv['tokenizer.ggml.merges'] },
  };
  const bos = tokens[kv['tokenizer.ggml.bos_token_id']];
  const eos = tokens[kv['tokenizer.ggml.eos_token_id']];
  const config = {
    add_bos_token: kv['tokenizer.ggml.add_bos_token'],
    add_eos_token: kv['tokenizer.ggml.add_eos_token'],
    bos_token: { __type: 'AddedToken', content: bos, lstrip: false, normalized: true, rstrip: false, single_word: false },
    eos_token: { __type: 'AddedToken', content: eos, lstrip: false, normalized: true, rstrip: false, single_word: false },
    clean_up_tokenization_spaces: false,
    model_max_length: kv['llama.context_length'],
    tokenizer_class: 'LlamaTokenizerFast',
  };
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'tokenizer.json'), JSON.stringify(tokenizer) + '\n');
  fs.writeFileSync(path.join(outDir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  console.log(`vocab ${Object.keys(vocab).length}, added ${added.length}, merges ${tokenizer.model.merges.length}`);
}

main();
