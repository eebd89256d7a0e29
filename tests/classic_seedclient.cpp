/*
 * classic_seedclient.cpp: a client that behaves as the seed's original clients do, compiled
 * as C++ against classic/client.h (as the seed's client1.cpp is), for the interop tests.
 *
 * What it does, as the originals do (issue 10's facts):
 * - key = ftok(MEMNAME, 65), relative to the working directory, the file never created: when
 *   it is missing the key is -1 and is used as it is. shmget(key, sizeof(struct Memory),
 *   IPC_CREAT | 0666), shmat, sem_open(semName, O_CREAT, SEM_PERMS, 0).
 * - Client 3 first writes "This is message 0 from client 3\n" to client 1 and posts semName.
 * - NUM_MESSAGES rounds, one second apart: when destClientNo is this client, sem_wait, print
 *   "Client N has received a message from client S:" and the text followed by a newline (the
 *   text ends with one: a blank line follows), write the next message, routed by the loop
 *   iteration i (2 + i % 2, 1 + 2 * (i % 2), 1 + i % 2), text "This is message i from client
 *   N\n", sem_post. packet_no is never written.
 * - Then "clientN: DONE", shmdt, shmctl(IPC_RMID), sem_close, sem_unlink.
 * Test plumbing only: the client number is the last character of argv[0] ("client2", so a
 * symlink can stand in for one of ours in start.sh) or argv[1]. The test build may lower
 * NUM_MESSAGES (-DNUM_MESSAGES=10) to keep the runs short.
 */
#include "../classic/client.h"

#include <fcntl.h>
#include <semaphore.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

using namespace std;

static int next_dest(int me, int i)
{
    if (me == 1)
        return 2 + i % 2;
    if (me == 2)
        return 1 + 2 * (i % 2);
    return 1 + i % 2;
}

int main(int argc, char **argv)
{
    size_t len = strlen(argv[0]);
    int CLIENT_NO = len ? argv[0][len - 1] - '0' : 0;
    if (argc > 1)
        CLIENT_NO = atoi(argv[1]);
    if (CLIENT_NO < 1 || CLIENT_NO > 3) {
        cerr << "usage: classic_seedclient 1|2|3 (or run it as client1, client2, client3)" << endl;
        return 2;
    }

    key_t ShmKey = ftok(MEMNAME, 65);
    int ShmID = shmget(ShmKey, sizeof(struct Memory), IPC_CREAT | 0666);
    if (ShmID < 0) {
        perror("shmget");
        return 1;
    }
    struct Memory *ShmPTR = (struct Memory *)shmat(ShmID, NULL, 0);
    if (ShmPTR == (struct Memory *)-1) {
        perror("shmat");
        return 1;
    }
    sem_t *sem_id = sem_open(semName, O_CREAT, SEM_PERMS, 0);
    if (sem_id == SEM_FAILED) {
        perror("sem_open");
        return 1;
    }

    if (CLIENT_NO == 3) {
        ShmPTR->srcClientNo = 3;
        ShmPTR->destClientNo = 1;
        sprintf(ShmPTR->message, "This is message 0 from client 3\n");
        sem_post(sem_id);
    }
    for (int i = 0; i < NUM_MESSAGES; i++) {
        if (*(volatile unsigned short *)&ShmPTR->destClientNo == CLIENT_NO) {
            sem_wait(sem_id);
            cout << "Client " << CLIENT_NO << " has received a message from client "
                 << ShmPTR->srcClientNo << ":" << endl;
            cout << ShmPTR->message << endl;
            ShmPTR->srcClientNo = (unsigned short)CLIENT_NO;
            ShmPTR->destClientNo = (unsigned short)next_dest(CLIENT_NO, i);
            sprintf(ShmPTR->message, "This is message %d from client %d\n", i, CLIENT_NO);
            sem_post(sem_id);
        }
        sleep(1);
    }
    cout << "client" << CLIENT_NO << ": DONE" << endl;
    shmdt((void *)ShmPTR);
    shmctl(ShmID, IPC_RMID, NULL);
    sem_close(sem_id);
    sem_unlink(semName);
    return 0;
}
