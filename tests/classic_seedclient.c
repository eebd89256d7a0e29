/*
 * classic_seedclient.c: a client written from the seed's README only, for the interop test.
 *
 * Design notes
 * - It does what the README shows and nothing more: ftok(MEMNAME, 65) on a path relative to
 *   the working directory, shmget(key, sizeof(struct Memory), IPC_CREAT | 0666), shmat,
 *   sem_open(semName, O_CREAT, SEM_PERMS, 0); client 3 writes "This is message 0 from
 *   client 3" to client 1 and posts; every client polls destClientNo, then takes semName as a
 *   mutex, prints, writes the next message by the README's routing table, posts; at the end
 *   shmdt, shmctl(IPC_RMID), sem_close, sem_unlink. It knows nothing of our control segment
 *   or turn semaphores: our clients must cope with it, not the other way round.
 * - Two things the README leaves open are filled in as the issue defines them: packet_no
 *   counts messages (+1 per forward) and each client receives NUM_MESSAGES of the
 *   3 * NUM_MESSAGES messages, the last of which is not forwarded.
 * - Test plumbing only: the client number is the last character of argv[0] ("client2", so a
 *   symlink can stand in for one of ours in start.sh) or argv[1]; SEED_SEM_NAME replaces
 *   "semName" so parallel tests stay apart. The polling interval is 1 ms.
 */
#include "../classic/client.h"

#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>

static int next_dest(int me, int i)
{
    if (me == 1)
        return 2 + i % 2;
    if (me == 2)
        return 1 + 2 * (i % 2);
    return 1 + i % 2;
}

static void die(int me, const char *call)
{
    fprintf(stderr, "seedclient%d: ", me);
    perror(call);
    exit(1);
}

int main(int argc, char **argv)
{
    size_t len = strlen(argv[0]);
    int me = len ? argv[0][len - 1] - '0' : 0;
    if (argc > 1)
        me = atoi(argv[1]);
    if (me < 1 || me > 3) {
        fprintf(stderr, "usage: seedclient 1|2|3 (or run it as client1, client2, client3)\n");
        return 2;
    }
    const char *name = getenv("SEED_SEM_NAME") ? getenv("SEED_SEM_NAME") : semName;

    key_t ShmKey = ftok(MEMNAME, 65);
    if (ShmKey == -1)
        die(me, "ftok");
    int ShmID = shmget(ShmKey, sizeof(struct Memory), IPC_CREAT | 0666);
    if (ShmID < 0)
        die(me, "shmget");
    volatile struct Memory *ShmPTR = shmat(ShmID, NULL, 0);
    if (ShmPTR == (void *)-1)
        die(me, "shmat");
    sem_t *sem_id = sem_open(name, O_CREAT, SEM_PERMS, 0);
    if (sem_id == SEM_FAILED)
        die(me, "sem_open");

    int sent = 0;
    if (me == 3) {
        ShmPTR->packet_no = 0;
        ShmPTR->srcClientNo = 3;
        ShmPTR->destClientNo = (unsigned short)next_dest(3, sent++);
        snprintf((char *)ShmPTR->message, BUF_LEN, "This is message 0 from client 3");
        if (sem_post(sem_id) != 0)
            die(me, "sem_post");
    }
    for (int received = 0; received < NUM_MESSAGES;) {
        if (ShmPTR->destClientNo != me) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            continue;
        }
        if (sem_wait(sem_id) != 0)
            die(me, "sem_wait");
        int p = ShmPTR->packet_no;
        printf("Client %d has received a message from client %d:\n%s\n", me, ShmPTR->srcClientNo,
               (const char *)ShmPTR->message);
        fflush(stdout);
        received++;
        if (p + 1 < 3 * NUM_MESSAGES) {
            ShmPTR->packet_no = p + 1;
            ShmPTR->srcClientNo = (unsigned short)me;
            ShmPTR->destClientNo = (unsigned short)next_dest(me, sent++);
            snprintf((char *)ShmPTR->message, BUF_LEN, "This is message %d from client %d", p + 1,
                     me);
        } else {
            ShmPTR->destClientNo = 0; /* the last message: nobody's any more */
        }
        if (sem_post(sem_id) != 0)
            die(me, "sem_post");
    }
    printf("client%d: DONE\n", me);
    if (shmdt((void *)ShmPTR) != 0)
        die(me, "shmdt");
    shmctl(ShmID, IPC_RMID, NULL); /* the seed's cleanup; a peer may have removed it first */
    sem_close(sem_id);
    sem_unlink(name);
    return 0;
}
