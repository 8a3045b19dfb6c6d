/* ekiden/net.h - networking (TCP, UDP, Unix sockets, resolution). Included by ekiden.h. */
#ifndef EKIDEN_NET_H
#define EKIDEN_NET_H
#endif
