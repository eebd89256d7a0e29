/*
 * relax.h - the one cpu_relax(): what a spinning loop does between two looks, for the
 * library's spin budgets (mailbox.c) and the benchmark's spinning peers (bench/).
 *
 * A pause hint tells the core this is a spin-wait: on x86 it saves power and avoids the
 * memory-order mis-speculation penalty when the awaited store lands; on arm64 `yield` is the
 * equivalent hint. Other architectures spin without one.
 */
#ifndef SHMBUS_RELAX_H
#define SHMBUS_RELAX_H

static inline void sb__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif
