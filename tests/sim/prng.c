/* prng.c - xoshiro256** (Blackman & Vigna), seeded with splitmix64. */
#include "prng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void prng_seed(struct prng *p, uint64_t seed)
{
    int i;

    for (i = 0; i < 4; i++)
        p->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t prng_next(struct prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t prng_below(struct prng *p, uint64_t n)
{
    /* Modulo bias is irrelevant at the simulator's small n. */
    return prng_next(p) % n;
}

uint64_t prng_range(struct prng *p, uint64_t lo, uint64_t hi)
{
    return lo + prng_below(p, hi - lo + 1);
}

bool prng_chance(struct prng *p, uint32_t ppm)
{
    return prng_below(p, 1000000) < ppm;
}
