/*
 * sem.c - sleeping and waking on a word of the segment (struct sb_sem).
 *
 * Design notes
 * ------------
 * The mailboxes and acknowledgements need a process-shared counting semaphore that lives in
 * the segment. glibc's sem_t would do, except that the segment is hostile memory: when a
 * peer scribbles over a sem_t's private field, glibc's sem_post() makes a futex call the
 * kernel refuses and then aborts the whole process (futex_fatal_error), which the segment
 * fuzzer (tests/fuzz_segment.c) showed. Here the futex calls are made directly: on a
 * scribbled word they fail or return early, and every caller looks again after waking.
 *
 * value counts posts not yet taken; waiters counts threads (about to be) asleep, so that a
 * post makes a system call only when someone sleeps. The two sides form a Dekker pair: the
 * poster adds to value, fences, reads waiters; the waiter adds to waiters, fences, reads
 * value, and the kernel's FUTEX_WAIT re-checks value == 0 atomically before sleeping.
 * A process that dies asleep leaves waiters one too high: posts then make a needless
 * FUTEX_WAKE, nothing worse.
 */
#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void sb__sem_init(struct sb_sem *s)
{
    memset(s, 0, sizeof(*s));
}

void sb__sem_post(struct sb_sem *s)
{
    /* Release: pairs with the acquire CAS in sb__sem_wait_until(). */
    atomic_fetch_add_explicit(&s->value, 1, memory_order_release);
    /* Dekker pair with the waiter's add to waiters + fence in sb__sem_wait_until(). */
    sb__full_fence();
    if (atomic_load_explicit(&s->waiters, memory_order_relaxed) != 0)
        syscall(SYS_futex, &s->value, FUTEX_WAKE, 1, NULL, NULL, 0);
}

int sb__sem_wait_until(struct sb_sem *s, const struct timespec *abs_monotonic, uint32_t most)
{
    for (;;) {
        uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
        if (v > most) {
            /* More posts than there can be waiters to wake: a peer scribbled the word.
             * Taking them one by one would cost a wake-up each (10^8 of them: seconds of
             * CPU); drop them all and count it as one wake-up, after which the caller looks
             * at the real state. A genuine post lost here costs at most one slice.
             * Acquire pairs with the release add in sb__sem_post(), as a take does. */
            atomic_compare_exchange_strong_explicit(&s->value, &v, 0, memory_order_acquire,
                                                    memory_order_relaxed);
            return 0;
        }
        while (v != 0) {
            /* Acquire pairs with the release add in sb__sem_post(). */
            if (atomic_compare_exchange_weak_explicit(&s->value, &v, v - 1, memory_order_acquire,
                                                      memory_order_relaxed))
                return 0;
        }
        atomic_fetch_add_explicit(&s->waiters, 1, memory_order_relaxed);
        /* Dekker pair with the poster's add to value + fence in sb__sem_post(). */
        sb__full_fence();
        long r = 0;
        int err = 0;
        if (atomic_load_explicit(&s->value, memory_order_relaxed) == 0) {
            /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time; the kernel sleeps
             * only if value is still 0. A signal handler makes it return EINTR whatever
             * SA_RESTART says (the wait has a timeout, so the kernel does not restart it). */
            r = syscall(SYS_futex, &s->value, FUTEX_WAIT_BITSET, 0, abs_monotonic, NULL,
                        FUTEX_BITSET_MATCH_ANY);
            err = r < 0 ? errno : 0;
        }
        atomic_fetch_sub_explicit(&s->waiters, 1, memory_order_relaxed);
        if (r == 0 || err == EAGAIN)
            continue; /* woken, or the value moved: look at it again */
        if (err == EINTR)
            return -EINTR;
        /* The kernel refused the wait (it should not): sleep out the time instead of
         * returning at once, so that a caller's loop cannot spin on it. */
        if (err != ETIMEDOUT &&
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, abs_monotonic, NULL) == EINTR)
            return -EINTR;
        return -ETIMEDOUT;
    }
}
