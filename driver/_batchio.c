/* The compiled twin of driver/batchio.py: a batch of datagrams in one system call each way.
 * Read batchio.py first: its docstrings are the contract, and tests/driver/test_batchio.py runs
 * both on the same sockets.
 *
 * recv_into: recvmmsg into the ring's slots (GRO-aware: a coalesced super-datagram is split
 *   into its segments by the size the kernel reports), the offset and length of every
 *   datagram into ``spans``, its slot into ``slots``, each slot's source address into
 *   ``addrs``.
 * send_run: one sendmsg for a run of equal-sized datagrams to one destination (UDP GSO), or one
 *   sendmmsg for up to 64 datagrams without GSO; the list is read in place, no copies. */

#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define MAX_SLOTS 256
#define MAX_RUN 64
#define ADDR_SIZE 28 /* sizeof(struct sockaddr_in6): room for either family */
#define MAX_GSO_BYTES 65000

static PyObject *recv_into(PyObject *self, PyObject *args) {
    int fd, gro;
    Py_ssize_t slot_size, nslots;
    PyObject *buf_obj, *spans_obj, *slots_obj, *addrs_obj;
    Py_buffer buf = {0}, spans = {0}, slots = {0}, addrs = {0};
    struct mmsghdr msgs[MAX_SLOTS];
    struct iovec iov[MAX_SLOTS];
    char control[MAX_SLOTS][CMSG_SPACE(sizeof(int))];
    PyObject *result = NULL;
    (void)self;

    if (!PyArg_ParseTuple(args, "iOnnOOOp", &fd, &buf_obj, &slot_size, &nslots, &spans_obj,
                          &slots_obj, &addrs_obj, &gro))
        return NULL;
    if (PyObject_GetBuffer(buf_obj, &buf, PyBUF_WRITABLE) < 0) return NULL;
    if (PyObject_GetBuffer(spans_obj, &spans, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) goto out;
    if (PyObject_GetBuffer(slots_obj, &slots, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) goto out;
    if (PyObject_GetBuffer(addrs_obj, &addrs, PyBUF_WRITABLE) < 0) goto out;
    if (nslots < 1 || nslots > MAX_SLOTS || slot_size < 1 || nslots * slot_size > buf.len ||
        nslots * ADDR_SIZE > addrs.len || spans.itemsize != 4 || slots.itemsize != 2) {
        PyErr_SetString(PyExc_ValueError, "the receive ring's buffers do not fit its slots");
        goto out;
    }
    Py_ssize_t capacity = spans.len / 8;  /* datagrams the spans can describe */
    if (slots.len / 2 < capacity) capacity = slots.len / 2;
    memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)nslots);
    for (Py_ssize_t k = 0; k < nslots; k++) {
        iov[k].iov_base = (char *)buf.buf + k * slot_size;
        iov[k].iov_len = (size_t)slot_size;
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
        msgs[k].msg_hdr.msg_name = (char *)addrs.buf + k * ADDR_SIZE;
        msgs[k].msg_hdr.msg_namelen = ADDR_SIZE;
        msgs[k].msg_hdr.msg_control = gro ? control[k] : NULL;
        msgs[k].msg_hdr.msg_controllen = gro ? sizeof(control[k]) : 0;
    }
    int got;
    Py_BEGIN_ALLOW_THREADS
    got = recvmmsg(fd, msgs, (unsigned)nslots, MSG_DONTWAIT, NULL);
    Py_END_ALLOW_THREADS
    if (got < 0) {
        result = PyLong_FromLong(-(long)errno);  /* batchio.py decides what an errno means */
        goto out;
    }
    uint32_t *span = (uint32_t *)spans.buf;
    uint16_t *slot_of = (uint16_t *)slots.buf;
    Py_ssize_t count = 0;
    for (int k = 0; k < got; k++) {
        size_t n = msgs[k].msg_len, segment = n;
        if (gro) {
            struct cmsghdr *c;
            for (c = CMSG_FIRSTHDR(&msgs[k].msg_hdr); c; c = CMSG_NXTHDR(&msgs[k].msg_hdr, c))
                if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                    int size;
                    memcpy(&size, CMSG_DATA(c), sizeof(size));
                    if (size > 0) segment = (size_t)size;
                }
        }
        if (segment == 0) segment = 1;  /* an empty datagram is one datagram */
        size_t at = 0;
        do {
            if (count >= capacity) break;  /* (the ring is sized so this never happens) */
            size_t len = n - at < segment ? n - at : segment;
            span[2 * count] = (uint32_t)(k * slot_size + (Py_ssize_t)at);
            span[2 * count + 1] = (uint32_t)len;
            slot_of[count] = (uint16_t)k;
            count++;
            at += segment;
        } while (at < n);
    }
    result = PyLong_FromSsize_t(count);
out:
    if (buf.obj) PyBuffer_Release(&buf);
    if (spans.obj) PyBuffer_Release(&spans);
    if (slots.obj) PyBuffer_Release(&slots);
    if (addrs.obj) PyBuffer_Release(&addrs);
    return result;
}

/* (host, port) into a sockaddr; 0 or -1 with an exception set. */
static int to_sockaddr(PyObject *addr, struct sockaddr_storage *out, socklen_t *len) {
    const char *host;
    int port;
    if (!PyArg_ParseTuple(addr, "si", &host, &port)) return -1;
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    const char *scope = strchr(host, '%');
    char plain[INET6_ADDRSTRLEN];
    if (scope != NULL && (size_t)(scope - host) < sizeof(plain)) {
        memcpy(plain, host, (size_t)(scope - host));
        plain[scope - host] = 0;
        host = plain;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        if (scope != NULL) v6->sin6_scope_id = if_nametoindex(scope + 1);
        *len = sizeof(*v6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
    return -1;
}

/* send_run(fd, datagrams, start, gso) -> (next, errno): datagrams[start:next] were sent
 * (errno 0), or the send failed with errno at ``next``. */
static PyObject *send_run(PyObject *self, PyObject *args) {
    int fd, gso;
    PyObject *list;
    Py_ssize_t start;
    struct iovec iov[MAX_RUN];
    struct mmsghdr msgs[MAX_RUN];
    struct sockaddr_storage dest;
    socklen_t dest_len;
    char control[CMSG_SPACE(sizeof(uint16_t))];
    (void)self;

    if (!PyArg_ParseTuple(args, "iO!np", &fd, &PyList_Type, &list, &start, &gso)) return NULL;
    Py_ssize_t total = PyList_GET_SIZE(list);
    if (start < 0 || start >= total) return Py_BuildValue("(ni)", start, 0);
    PyObject *first = PyList_GET_ITEM(list, start);
    if (!PyTuple_Check(first) || PyTuple_GET_SIZE(first) != 2 ||
        !PyBytes_Check(PyTuple_GET_ITEM(first, 0))) {
        PyErr_SetString(PyExc_TypeError, "datagrams must be (bytes, (host, port)) tuples");
        return NULL;
    }
    PyObject *addr = PyTuple_GET_ITEM(first, 1);
    if (to_sockaddr(addr, &dest, &dest_len) < 0) return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(PyTuple_GET_ITEM(first, 0)), bytes = 0, end = start;
    /* The run: same destination; with GSO also same size (only the last may be shorter). */
    while (end < total && end - start < MAX_RUN) {
        PyObject *item = PyList_GET_ITEM(list, end);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 0)))
            break;
        PyObject *other = PyTuple_GET_ITEM(item, 1);
        if (other != addr) {
            int same = PyObject_RichCompareBool(other, addr, Py_EQ);
            if (same < 0) return NULL;
            if (!same) break;
        }
        PyObject *data = PyTuple_GET_ITEM(item, 0);
        Py_ssize_t length = PyBytes_GET_SIZE(data);
        if (gso && (length > size || bytes + length > MAX_GSO_BYTES)) break;
        iov[end - start].iov_base = PyBytes_AS_STRING(data);
        iov[end - start].iov_len = (size_t)length;
        bytes += length;
        end++;
        if (gso && length < size) break;  /* a short segment must be the last one */
    }
    Py_ssize_t n = end - start;
    int sent, err = 0;
    /* The bytes objects stay alive: the list holds them, and the GIL is kept (the calls do
     * not block: the socket is non-blocking). */
    if (gso && n > 1) {
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_name = &dest;
        msg.msg_namelen = dest_len;
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t segment = (uint16_t)size;
        memcpy(CMSG_DATA(c), &segment, sizeof(segment));
        sent = sendmsg(fd, &msg, 0) < 0 ? -1 : (int)n;
    } else {
        memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)n);
        for (Py_ssize_t k = 0; k < n; k++) {
            msgs[k].msg_hdr.msg_name = &dest;
            msgs[k].msg_hdr.msg_namelen = dest_len;
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        sent = sendmmsg(fd, msgs, (unsigned)n, 0);
    }
    if (sent < 0) {
        err = errno;
        sent = 0;
    }
    return Py_BuildValue("(ni)", start + sent, err);
}

static PyMethodDef methods[] = {
    {"recv_into", recv_into, METH_VARARGS,
     "recv_into(fd, buf, slot_size, nslots, spans, slots, addrs, gro) -> datagrams, or "
     "-errno"},
    {"send_run", send_run, METH_VARARGS,
     "send_run(fd, datagrams, start, gso) -> (next, errno)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "driver._batchio", "Compiled twin of driver.batchio.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__batchio(void) { return PyModule_Create(&module); }
