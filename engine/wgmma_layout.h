// The shared-memory and register bookkeeping of the CUDA backend's Hopper kernel for the routed
// experts' products (engine/cuda/grouped_wgmma.cu: warpgroup products, wgmma, reading their
// operands from shared memory through 64-bit descriptors), written once for the host and the
// device so that it is unit tested on the host (test_dispatch). The layouts are the PTX ISA's:
//
// - An operand tile of R rows × 64 BF16 along K (128 bytes a row), "K-major with the 128-byte
//   swizzle": row r at r · 128 bytes, its eight 16-byte pieces permuted within the row, piece c
//   stored at c XOR (r mod 8). Eight rows (1,024 bytes, aligned to 1,024) repeat the pattern.
// - Its descriptor: the start address / 16 in bits 0-13, the leading byte offset / 16 in bits
//   16-29 (not used by this layout; 1), the stride byte offset / 16 in bits 32-45 (1,024 bytes
//   from eight rows to the next eight), the base offset 0 in bits 49-51, the layout (1: the
//   128-byte swizzle) in bits 62-63. The k-th 16 columns of the tile start 32 · k bytes on.
// - The accumulator of m64nNk16 (64 × N f32 over the 128 threads of a warpgroup, N / 2 each):
//   register i of the thread of warp w and lane l holds row 16w + l/4 (+ 8 for i mod 4 ≥ 2) and
//   column 8 · (i / 4) + 2 · (l mod 4) (+ 1 for odd i).
#pragma once

#include <stdint.h>

#include "engine/router_core.h"  // MOE_HD

namespace moe::wgmma_layout {

// Byte offset of 16-byte piece `piece` (0..7) of row `row` within a swizzled tile.
MOE_HD inline uint32_t swizzled_offset(uint32_t row, uint32_t piece) {
    return row * 128u + ((piece ^ (row & 7u)) << 4);
}

// The descriptor of a swizzled tile (or of its k-th 16 columns: address + 32 · k) at shared
// address `address`.
MOE_HD inline uint64_t descriptor(uint32_t address) {
    return static_cast<uint64_t>((address & 0x3FFFFu) >> 4) | (static_cast<uint64_t>(1) << 16) |
           (static_cast<uint64_t>(1024 >> 4) << 32) | (static_cast<uint64_t>(1) << 62);
}

// Row and column of the accumulator register i of warp `warp` (0..3 in its warpgroup), lane
// `lane`.
struct Cell {
    int row, col;
};
MOE_HD inline Cell accumulator_cell(int warp, int lane, int i) {
    return {16 * warp + lane / 4 + ((i % 4) >= 2 ? 8 : 0), 8 * (i / 4) + 2 * (lane % 4) + (i % 2)};
}

}  // namespace moe::wgmma_layout
