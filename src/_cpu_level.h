/* Which of setup.py's ISA_LEVEL_FLAGS the running CPU and OS support: the same features,
 * checked through the compiler's cpuid/xgetbv helper. Returns the x86-64 microarchitecture
 * level (1, 3 or 4), or 0 when it is not x86-64 or cannot be told. */
#ifndef GMMFAST_CPU_LEVEL_H
#define GMMFAST_CPU_LEVEL_H

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
static int gmmfast_cpu_level(void)
{
    __builtin_cpu_init();
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
             && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
             && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
             && __builtin_cpu_supports("avx512vl");
    return v4 ? 4 : (v3 ? 3 : 1);
}
#else
static int gmmfast_cpu_level(void) { return 0; }
#endif

#endif /* GMMFAST_CPU_LEVEL_H */
