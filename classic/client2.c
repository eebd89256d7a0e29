/*
 * client2.c: the seed's client 2.
 *
 * Client 2 receives from clients 1 and 3 and sends to 1, 3, 1, 3, ... (1 + 2 * (i % 2)).
 * All three run the same code (exchange.c, session.c); only the number differs, as in the
 * seed, where the three sources differed in CLIENT_NO and the routing line.
 */
#include "classic.h"

int main(int argc, char **argv)
{
    return client_main(2, argc, argv);
}
