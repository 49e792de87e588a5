/*
 * prng.h - the simulator's only source of randomness: xoshiro256** seeded by
 * splitmix64 from one 64-bit seed, so a seed names one whole schedule.
 */
#ifndef SIM_PRNG_H
#define SIM_PRNG_H

#include <stdbool.h>
#include <stdint.h>

struct prng {
    uint64_t s[4];
};

void prng_seed(struct prng *p, uint64_t seed);
uint64_t prng_next(struct prng *p);
/* Uniform in [0, n); n > 0. */
uint64_t prng_below(struct prng *p, uint64_t n);
/* Uniform in [lo, hi]. */
uint64_t prng_range(struct prng *p, uint64_t lo, uint64_t hi);
/* True with probability ppm / 1,000,000. */
bool prng_chance(struct prng *p, uint32_t ppm);

#endif
