/* rng.h - counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC'11; the constants of Random123 / curand / numpy's Philox).
 *
 * A generator is a (seed, stream) key; the i-th 32-bit word of a stream is a pure function of
 * (seed, stream, i), so any slice of a tensor can be drawn independently, in any order, on any
 * thread, and reproduces bit for bit.
 *   key     = the 64-bit seed (two 32-bit words)
 *   counter = (block index lo, block index hi, stream lo, stream hi); one block = 4 words.
 * Uniform floats take the top 24 bits of one word: (w >> 8) * 2^-24 in [0, 1).
 * Normals use Box-Muller on one block per pair of outputs: a 53-bit uniform u1 in (0, 1] from
 * words 0-1, a 53-bit uniform u2 from words 2-3; element 2k = r cos(2 pi u2), 2k+1 = r sin(2 pi u2)
 * with r = sqrt(-2 ln u1), computed in double.
 */
#ifndef DA_RNG_H
#define DA_RNG_H

#include <stddef.h>
#include <stdint.h>

/* One Philox4x32-10 block: out[4] = philox(counter ctr[4], key[2]). */
void da_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The 32-bit word `index` of stream (seed, stream). */
uint32_t da_rng_u32(uint64_t seed, uint64_t stream, uint64_t index);

/* out[i] = element (first + i) of the stream as U[lo, hi) floats. */
void da_rng_uniform(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float lo, float hi, float *out);
/* out[i] = element (first + i) of the stream as N(mean, std) floats (Box-Muller, see above). */
void da_rng_normal(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float mean, float std, float *out);

/* A stream id from a name (FNV-1a 64 of the bytes), used for per-tensor streams: the values of a
 * tensor depend only on (seed, its name), never on which file or in which order it is written. */
uint64_t da_rng_stream_of(const char *name);

#endif /* DA_RNG_H */
