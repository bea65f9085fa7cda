#!/usr/bin/env node
// Writes engine/tokenizer/unicode_supplement.h: for each Unicode general category that
// tokenizer.json patterns use (\p{L}, \p{N}, \p{P}, \p{S}, \p{M} and their subcategories), the
// code points that Hugging Face tokenizers' regex engine (Oniguruma, Unicode 16.0 in npm
// tokenizers@0.23.2) puts in the category but Debian 12's PCRE2 (10.42, Unicode 14.0) does
// not — characters assigned in Unicode 15.0-16.0 (new emoji, CJK Extension H/I, Kawi, ...).
// Membership is probed with the reference itself and with PCRE2 (a small C probe built with cc).
// Usage: node make_unicode_supplement.js   (needs gcc and libpcre2-dev)
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { Tokenizer } = require('tokenizers');

const CATEGORIES = ['L', 'Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'M', 'Mn', 'Mc', 'Me', 'N', 'Nd', 'Nl', 'No',
                    'P', 'Pc', 'Pd', 'Ps', 'Pe', 'Pi', 'Pf', 'Po', 'S', 'Sm', 'Sc', 'Sk', 'So'];
const OUT = path.join(__dirname, '..', '..', '..', 'engine', 'tokenizer', 'unicode_supplement.h');

function allCodePoints() {
  const cps = [];
  for (let cp = 0; cp <= 0x10ffff; cp++) if (cp < 0xd800 || cp > 0xdfff) cps.push(cp);
  return cps;
}

// Members of \p{cat} for HF: a Split(Isolated) on "\x01c\x01c..." leaves a member c as a
// one-character piece and merges a non-member into the \x01 gaps.
function hfMembers(cat, cps) {
  const json = { version: '1.0', added_tokens: [], normalizer: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: `\\p{${cat}}` }, behavior: 'Isolated', invert: false },
    post_processor: null, decoder: null, model: { type: 'BPE', vocab: { a: 0 }, merges: [] } };
  const pre = Tokenizer.fromString(JSON.stringify(json)).getPreTokenizer();
  const members = new Set();
  for (let i = 0; i < cps.length; i += 20000) {
    const s = cps.slice(i, i + 20000).map((cp) => '\u0001' + String.fromCodePoint(cp)).join('') + '\u0001';
    for (const [text] of pre.preTokenizeString(s)) {
      const a = [...text];
      if (a.length === 1 && a[0] !== '\u0001') members.add(a[0].codePointAt(0));
    }
  }
  return members;
}

const PROBE_C = `
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
static int enc(unsigned c, unsigned char* o) {
  if (c < 0x80) { o[0] = c; return 1; }
  if (c < 0x800) { o[0] = 0xC0 | (c >> 6); o[1] = 0x80 | (c & 63); return 2; }
  if (c < 0x10000) { o[0] = 0xE0 | (c >> 12); o[1] = 0x80 | ((c >> 6) & 63); o[2] = 0x80 | (c & 63); return 3; }
  o[0] = 0xF0 | (c >> 18); o[1] = 0x80 | ((c >> 12) & 63); o[2] = 0x80 | ((c >> 6) & 63); o[3] = 0x80 | (c & 63); return 4;
}
int main(int argc, char** argv) {
  char v[64]; pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, v); printf("%s\\n", v);
  for (int a = 1; a < argc; a++) {
    int err; PCRE2_SIZE eo; char pat[64]; snprintf(pat, sizeof pat, "^\\\\p{%s}$", argv[a]);
    pcre2_code* re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eo, NULL);
    pcre2_match_data* md = pcre2_match_data_create(1, NULL);
    printf("%s", argv[a]);
    for (unsigned c = 0; c <= 0x10FFFF; c++) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      unsigned char b[4]; int n = enc(c, b);
      if (pcre2_match(re, b, n, 0, 0, md, NULL) >= 0) printf(" %u", c);
    }
    printf("\\n");
  }
  return 0;
}`;

function pcreMembers() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pcre-probe-'));
  fs.writeFileSync(path.join(dir, 'probe.c'), PROBE_C);
  execFileSync('cc', ['-O2', '-o', path.join(dir, 'probe'), path.join(dir, 'probe.c'), '-lpcre2-8']);
  const lines = execFileSync(path.join(dir, 'probe'), CATEGORIES, { maxBuffer: 1 << 28 }).toString().trim().split('\n');
  fs.rmSync(dir, { recursive: true });
  const version = lines.shift();
  const sets = {};
  for (const l of lines) { const [cat, ...n] = l.split(' '); sets[cat] = new Set(n.map(Number)); }
  return { version, sets };
}

function ranges(cps) {
  const r = [];
  for (const x of cps.sort((a, b) => a - b)) {
    if (r.length && r[r.length - 1][1] === x - 1) r[r.length - 1][1] = x; else r.push([x, x]);
  }
  return r;
}

function main() {
  const cps = allCodePoints();
  const pcre = pcreMembers();
  const rows = [];
  for (const cat of CATEGORIES) {
    const hf = hfMembers(cat, cps);
    const extra = [...hf].filter((c) => !pcre.sets[cat].has(c));
    const missing = [...pcre.sets[cat]].filter((c) => !hf.has(c));
    if (missing.length) console.warn(`${cat}: ${missing.length} code points are in PCRE2's class but not HF's (not handled)`);
    const hex = (c) => `\\\\x{${c.toString(16).toUpperCase()}}`;
    const text = ranges(extra).map(([a, b]) => (a === b ? hex(a) : `${hex(a)}-${hex(b)}`)).join('');
    rows.push(`    {"${cat}", "${text}"},  // ${extra.length} code points`);
    console.log(`${cat}: +${extra.length}`);
  }
  const tokVersion = require(path.join(__dirname, 'node_modules', 'tokenizers', 'package.json')).version;
  fs.writeFileSync(OUT, `// Code points that Hugging Face tokenizers (npm tokenizers@${tokVersion}, Oniguruma with Unicode
// 16.0) counts in a general category but PCRE2 ${pcre.version} tables do not (assigned since).
// regex.cpp appends them to \\p{X} so that patterns classify text exactly as the reference does.
// Generated by tests/reference/tokenizer/make_unicode_supplement.js; do not edit by hand.
#pragma once

namespace moe::tok {

struct UnicodeSupplement {
    const char* category;  // short general-category name as written in \\p{..}
    const char* ranges;    // PCRE2 class items
};

inline constexpr UnicodeSupplement kUnicodeSupplement[] = {
${rows.join('\n')}
};

}  // namespace moe::tok
`);
  console.log('wrote', OUT);
}

main();
