/* ekiden/sync.h - channels and synchronisation primitives. Included by ekiden.h. */
#ifndef EKIDEN_SYNC_H
#define EKIDEN_SYNC_H
#endif
