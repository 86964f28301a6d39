#ifndef REGWATCH_CZEROMQ_SHIM_H
#define REGWATCH_CZEROMQ_SHIM_H
#include <zmq.h>
#include <sys/eventfd.h>
/* epoll: regwatch-fleetsim watches the ZMQ_FD of thousands of sockets in one set. */
#include <sys/epoll.h>

/* Options that libzmq 4.3 ships as DRAFT but Debian's build accepts (verified with zmq_setsockopt). */
static const int RW_ZMQ_ZAP_ENFORCE_DOMAIN = 93;
static const int RW_ZMQ_RECONNECT_STOP = 109;
static const int RW_ZMQ_RECONNECT_STOP_HANDSHAKE_FAILED = 0x2;

/* ZMQ_EVENT_* values as ints (the macros are imported, but typed helpers keep call sites tidy). */
static inline int rw_zmq_errno(void) { return zmq_errno(); }

/* Names the calling thread (visible in top -H, perf and gdb). glibc declares it only under _GNU_SOURCE. */
#include <pthread.h>
extern int pthread_setname_np(pthread_t thread, const char *name);
static inline void rw_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }
#endif
