/*
 * client3.c: the seed's client 3.
 *
 * Client 3 is the initiator: it writes message 0 to client 1, then sends to 2, 1, 2, ...
 * (1 + i % 2, its first message being i = 0); with 90 messages it receives the last one.
 * All three run the same code (exchange.c, session.c); only the number differs, as in the
 * seed, where the three sources differed in CLIENT_NO and the routing line.
 */
#include "classic.h"

int main(int argc, char **argv)
{
    return client_main(3, argc, argv);
}
