/*
 * client1.c: the seed's client 1.
 *
 * Client 1 receives from clients 3 and 2 and sends to 2, 3, 2, 3, ... (2 + i % 2).
 * All three run the same code (exchange.c, session.c); only the number differs, as in the
 * seed, where the three sources differed in CLIENT_NO and the routing line.
 */
#include "classic.h"

int main(int argc, char **argv)
{
    return client_main(1, argc, argv);
}
