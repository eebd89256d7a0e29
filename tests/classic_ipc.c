/*
 * classic_ipc.c: plants and removes System V segments for the classic error tests.
 *
 *   classic_ipc mkseg KEYFILE PROJ SIZE MODE   create a segment under ftok(KEYFILE, PROJ);
 *                                              print its id
 *   classic_ipc rmseg ID                       remove it
 *
 * The shell cannot make a segment under a chosen key; the tests need one that is not ours
 * (wrong size, or another user's) to check that the clients refuse it cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "mkseg") == 0) {
        key_t key = ftok(argv[2], atoi(argv[3]));
        if (key == -1) {
            perror("classic_ipc: ftok");
            return 1;
        }
        int id = shmget(key, strtoul(argv[4], NULL, 10),
                        IPC_CREAT | IPC_EXCL | (int)strtol(argv[5], NULL, 8));
        if (id < 0) {
            perror("classic_ipc: shmget");
            return 1;
        }
        printf("%d\n", id);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "rmseg") == 0) {
        if (shmctl(atoi(argv[2]), IPC_RMID, NULL) != 0) {
            perror("classic_ipc: shmctl IPC_RMID");
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "usage: classic_ipc mkseg KEYFILE PROJ SIZE MODE | rmseg ID\n");
    return 2;
}
