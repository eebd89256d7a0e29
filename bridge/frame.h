/*
 * frame.h - what shmbus-bridge puts on NATS, and the addresses local programs write.
 *
 * Addresses. A local program sends to the bridge's client (by default the client named
 * "bridge") a message whose payload starts with the remote address and one space:
 *
 *     "NODE/NAME body..."      NAME: a client name on NODE's bus ([A-Za-z0-9._-])
 *     "NODE/#ID body..."       ID: a client id on NODE's bus (for clients without a name)
 *     "* /QUEUE body..."       (no space: it only keeps this comment open) QUEUE: a work queue
served across hosts (bridges started with
 *                              --queue QUEUE): exactly one member of group QUEUE on one of
 *                              the nodes gets body, unchanged
 *
 * NODE is a bridge's --node ([A-Za-z0-9_-], no dot: it is one token of a NATS subject). The
 * receiving bridge delivers "ORIGIN body..." to NAME, where ORIGIN is the sender's address
 * as seen from there ("NODE/NAME" or "NODE/#ID"), so that an answer is sent back the same
 * way. Requests (shmbus_request() to the bridge) carry the same address;
the reply comes *back as an ordinary shmbus reply,
    body only.**Topics need no address
    : a bridge started with-- topic T is a member of group T on its bus,
    *and exports what local programs publish to T; it publishes on its bus what the other
 * bridges export (body unchanged, from its client "<as>.pub").
 *
 * Frames. Each message crosses NATS as one frame on subject PREFIX.NODE.msg (direct),
 * PREFIX.NODE.req (requests, with a NATS reply subject PREFIX.ORIGIN_NODE.rep.TOKEN),
 * that reply subject, PREFIX.topic.T (topic T) or PREFIX.queue.Q (work queue Q, a NATS
 * queue group, with reply subject PREFIX.ORIGIN_NODE.nr.Q on which only the server's "no
 * responders" status arrives). So "topic" and "queue" are not node names. A frame is a
 * fixed 40-byte header, big-endian, then the destination, the origin and the body:
 *
 *     0  'S' 'B'  magic          2  version (1)          3  kind (FRAME_MSG/REQ/REP/TOPIC/QUEUE)
 *     4  prio (0..7)             5  flags (SHMBUS_MSG_* of the original)
 *     6  dst_len                 7  org_len
 *     8  epoch: the sending bridge's incarnation (random at start)
 *    16  seq: 1, 2, ... per sending bridge, destination node and kind (topics: per sending
 *        bridge and topic; work queues: 0, not numbered): a gap is a loss
 *    24  token: a request's number at the requesting bridge; a reply carries it back
 *    32  status: 0, or the errno a reply could not be obtained with (then no body)
 *    36  hops: how many bridges passed a work-queue frame back to NATS (0 or 1)
 *    37  reserved (0)
 *    40  dst (dst_len bytes: a client, a topic or a queue name), org (org_len bytes),
 *        body
 *
 * Everything here is parsing of bytes from the network: every length is checked against
 * what arrived before it is used.
 */
#ifndef SHMBUS_BRIDGE_FRAME_H
#define SHMBUS_BRIDGE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR     40
#define FRAME_VERSION 1
#define FRAME_MSG     1
#define FRAME_REQ     2
#define FRAME_REP     3
#define FRAME_TOPIC   4
#define FRAME_QUEUE   5
#define NODE_MAX      31
#define ADDR_MAX      (NODE_MAX + 1 + 31) /* "NODE/NAME" */

struct frame {
    uint8_t kind, prio, flags, hops;
    uint64_t epoch, seq, token;
    uint32_t status;
    const char *dst; /* not NUL-terminated: dst_len bytes */
    size_t dst_len;
    const char *org;
    size_t org_len;
    const void *body;
    size_t body_len;
};

/* Is s (len bytes) a valid node name / client name / remote "NODE/NAME" or "NODE/#ID"? */
int frame_node_ok(const char *s, size_t len);
int frame_name_ok(const char *s, size_t len);

/* Is s (len bytes) a group name that can be part of a NATS subject: a client name (not
 * "#ID") without a leading or trailing dot and without two dots in a row (a dot separates
 * NATS subject tokens, which may not be empty)? */
int frame_group_ok(const char *s, size_t len);

/* Split a local payload "NODE/TARGET body" into its parts. NODE may be '*' (any node),
 * then TARGET must pass frame_group_ok(). Returns 0, or -EINVAL when the address is
 * malformed (then nothing is set). */
int frame_split(const char *p, size_t len, const char **node, size_t *node_len, const char **target,
                size_t *target_len, const char **body, size_t *body_len);

/* Write f into out (cap bytes): returns the frame's length, or -EMSGSIZE. */
long frame_encode(const struct frame *f, uint8_t *out, size_t cap);

/* Parse len bytes into *f (pointers into p). Returns 0 or -EBADMSG. */
int frame_decode(const void *p, size_t len, struct frame *f);

#endif
