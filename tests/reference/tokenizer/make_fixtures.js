#!/usr/bin/env node
// Builds the small tokenizer.json fixtures of tests/fixtures/tokenizers/tiny-*/ from the committed
// DeepSeek LLM tokenizer (its first 700 merges over the 256 byte-level characters). Each fixture
// exercises one part of the format (split behaviours, digits, GPT-2 ByteLevel regex, template
// post-processor, added-token flags, normalizers, byte fallback, pair-form merges ...).
// Expected ids for them come from make_expected.js (Hugging Face tokenizers), not from this file.
// Usage: node make_fixtures.js   (writes into ../../fixtures/tokenizers/)
'use strict';
const fs = require('fs');
const path = require('path');

const FIXTURES = path.join(__dirname, '..', '..', 'fixtures', 'tokenizers');
const N_MERGES = 700;

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 upwards.
function byteChars() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  return bs.map((b, i) => String.fromCodePoint(cs[i]));   // in bytes_to_unicode order
}

function byteLevelBpe(pairForm) {
  const llm = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'deepseek-llm', 'tokenizer.json'), 'utf8'));
  const vocab = {};
  let next = 0;
  for (const c of byteChars()) vocab[c] = next++;
  const merges = llm.model.merges.slice(0, N_MERGES);
  for (const m of merges) {
    const [a, b] = m.split(' ');
    if (!(a in vocab) || !(b in vocab)) throw new Error(`merge ${m} not closed`);
    if (!((a + b) in vocab)) vocab[a + b] = next++;
  }
  return { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
           end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
           vocab, merges: pairForm ? merges.map((m) => m.split(' ')) : merges };
}

const added = (id, content, special, flags = {}) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special, ...flags,
});
const split = (pattern, behavior, invert = false) => ({ type: 'Split', pattern, behavior, invert });
const bl = (add_prefix_space = false, use_regex = false) => ({ type: 'ByteLevel', add_prefix_space, trim_offsets: true, use_regex });
const BL_DECODER = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
const BL_POST = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };

function tokenizer({ model, added_tokens = [], normalizer = null, pre_tokenizer, post_processor = BL_POST, decoder = BL_DECODER }) {
  return { version: '1.0', truncation: null, padding: null, added_tokens, normalizer, pre_tokenizer, post_processor, decoder, model };
}

function write(name, tok, config) {
  const dir = path.join(FIXTURES, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok, null, 1) + '\n');
  if (config) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  else if (fs.existsSync(path.join(dir, 'tokenizer_config.json'))) fs.unlinkSync(path.join(dir, 'tokenizer_config.json'));
}

function main() {
  const llm = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'deepseek-llm', 'tokenizer.json'), 'utf8'));
  const model = byteLevelBpe(false);
  const nv = Object.keys(model.vocab).length;
  const specials = [added(nv, '<｜begin▁of▁sentence｜>', true), added(nv + 1, '<｜end▁of▁sentence｜>', true)];
  const llmConfig = {
    add_bos_token: true, add_eos_token: false,
    bos_token: { __type: 'AddedToken', content: '<｜begin▁of▁sentence｜>', lstrip: false, normalized: true, rstrip: false, single_word: false },
    eos_token: { __type: 'AddedToken', content: '<｜end▁of▁sentence｜>', lstrip: false, normalized: true, rstrip: false, single_word: false },
    tokenizer_class: 'LlamaTokenizerFast',
  };

  // 1. The DeepSeek LLM pre-tokenizer pattern set on a tiny vocab (string-form merges).
  write('tiny-llm', tokenizer({ model, added_tokens: specials, normalizer: { type: 'Sequence', normalizers: [] },
                                 pre_tokenizer: llm.pre_tokenizer }), llmConfig);
  // 2. Same, merges in the [a, b] pair form: must give identical ids.
  write('tiny-llm-pairs', tokenizer({ model: byteLevelBpe(true), added_tokens: specials,
                                       pre_tokenizer: llm.pre_tokenizer }), llmConfig);
  // 3. Split behaviours, invert, String patterns, Contiguous digits, `$` anchor.
  write('tiny-splits', tokenizer({ model, added_tokens: specials, pre_tokenizer: { type: 'Sequence', pretokenizers: [
    split({ String: ' - ' }, 'Removed'),
    split({ Regex: '[,;]' }, 'MergedWithPrevious'),
    split({ Regex: '[$#]' }, 'MergedWithNext'),
    split({ Regex: '\\s+$' }, 'Isolated'),
    split({ Regex: '[A-Z][a-z]*' }, 'Contiguous', true),
    { type: 'Digits', individual_digits: false },
    bl(false, false),
  ] } }));
  write('tiny-invert', tokenizer({ model, pre_tokenizer: { type: 'Sequence', pretokenizers: [
    split({ Regex: '\\p{L}+' }, 'Removed', true),
    split({ Regex: '^\\s+|\\s+$' }, 'Isolated'),
    bl(true, false),
  ] } }));
  // 4. GPT-2 style: ByteLevel with its own regex and add_prefix_space; TemplateProcessing adds BOS/EOS.
  write('tiny-gpt2', tokenizer({ model, added_tokens: specials, pre_tokenizer: bl(true, true),
    post_processor: { type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<｜begin▁of▁sentence｜>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
               { SpecialToken: { id: '<｜end▁of▁sentence｜>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: {
        '<｜begin▁of▁sentence｜>': { id: '<｜begin▁of▁sentence｜>', ids: [nv], tokens: ['<｜begin▁of▁sentence｜>'] },
        '<｜end▁of▁sentence｜>': { id: '<｜end▁of▁sentence｜>', ids: [nv + 1], tokens: ['<｜end▁of▁sentence｜>'] },
      } } }));
  // 5. Added tokens with flags, matched before (normalized: false) and after (true) the normalizer.
  write('tiny-added', tokenizer({ model,
    added_tokens: [
      ...specials,
      added(nv + 2, '[MASK]', true, { lstrip: true, rstrip: true }),
      added(nv + 3, '<word>', false, { single_word: true }),
      added(nv + 4, 'hello world', false, { normalized: true }),
      added(nv + 5, '<raw>', false, { normalized: false, rstrip: true }),
      added(nv + 6, '<mask>', true, { normalized: false }),
      added(nv + 7, '<mask_long>', true, { normalized: false }),
    ],
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'Replace', pattern: { String: '``' }, content: '"' },
      { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
      { type: 'Strip', strip_left: false, strip_right: true },
    ] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [split({ Regex: '\\s?\\p{L}+|\\s?\\p{N}|\\s?[^\\s\\p{L}\\p{N}]+|\\s+' }, 'Isolated'), bl(false, false)] },
    decoder: { type: 'Sequence', decoders: [BL_DECODER, { type: 'Replace', pattern: { String: 'hello' }, content: 'HELLO' }] },
  }));
  // 6. A SentencePiece-like BPE with byte fallback, unk and the Llama decoder chain.
  const spmVocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let id = 3;
  for (let b = 0; b < 256; b++) spmVocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = id++;
  const spmMerges = [];
  for (const c of '▁abcdefghijklmnopqrstuvwxyzTHE.,') spmVocab[c] = id++;
  for (const m of ['▁ t', 'h e', '▁t he', '▁ a', 'i n', 'in g', 'e r', '▁ s', 'o n']) {
    const [a, b] = m.split(' ');
    spmMerges.push(m);
    if (!((a + b) in spmVocab)) spmVocab[a + b] = id++;
  }
  const spmModel = (extra) => ({ type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab: spmVocab, merges: spmMerges, ...extra });
  const llamaDecoder = { type: 'Sequence', decoders: [
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
    { type: 'Strip', content: ' ', start: 1, stop: 0 }] };
  const spmAdded = [added(0, '<unk>', true), added(1, '<s>', true), added(2, '</s>', true)];
  const spmNorm = { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] };
  const spmPost = { type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } };
  write('tiny-fallback', tokenizer({ model: spmModel({}), added_tokens: spmAdded, normalizer: spmNorm,
    pre_tokenizer: null, post_processor: spmPost, decoder: llamaDecoder }));
  write('tiny-unk', tokenizer({ model: spmModel({ byte_fallback: false, fuse_unk: false, ignore_merges: true }),
    added_tokens: spmAdded, normalizer: spmNorm, pre_tokenizer: null, post_processor: spmPost, decoder: llamaDecoder }));
  // 7. Metaspace decoder; Roberta and Bert post-processors (the latter inside a Sequence).
  write('tiny-metaspace', tokenizer({ model: spmModel({}), added_tokens: spmAdded, normalizer: spmNorm,
    pre_tokenizer: null, post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }] } }));
  write('tiny-roberta', tokenizer({ model, added_tokens: specials, pre_tokenizer: bl(true, true),
    post_processor: { type: 'RobertaProcessing', sep: ['<｜end▁of▁sentence｜>', nv + 1], cls: ['<｜begin▁of▁sentence｜>', nv],
                      trim_offsets: true, add_prefix_space: true } }));
  write('tiny-bert-seq', tokenizer({ model, added_tokens: specials, pre_tokenizer: bl(false, true),
    post_processor: { type: 'Sequence', processors: [BL_POST,
      { type: 'BertProcessing', sep: ['<｜end▁of▁sentence｜>', nv + 1], cls: ['<｜begin▁of▁sentence｜>', nv] }] } }));
  console.log('fixtures written to', FIXTURES);
}

main();
