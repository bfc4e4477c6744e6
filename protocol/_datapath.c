/* The compiled twins of protocol/datapath.py's source_datagrams_py and place_run_py: the same
 * loops, the same bytes and state changes, without a Python object per datagram received. Read datapath.py first: its docstring is the
 * contract, and tests/protocol/test_datapath.py runs both on the same inputs.
 *
 * Per call it reads the transfer's attributes once, keeps the current block's assembly
 * buffers open while datagrams stay on that block, and writes the counters back at the end. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HEADER_SIZE 24
#define FLAG_REPAIR 0x20
#define KIND_MASK 0x0F
#define HAVE_BYTES 32
#define STORED 1
#define DECODING 2
static const unsigned char PREFIX[4] = {'M', 'C', 2, 1};

static inline uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The assembly of the block being placed, its buffers open. */
typedef struct {
    PyObject *assembly;  /* borrowed from the assemblies dict; NULL: none open */
    long block;
    long kind, encoded_length, symbol_size, groups, groups_left, total;
    int dirty;  /* groups_left/total changed: write back */
    Py_buffer buffer, have, counts, group_k;
} Open;

static int get_long(PyObject *obj, const char *name, long *out) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    *out = PyLong_AsLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int set_long(PyObject *obj, const char *name, long value) {
    PyObject *v = PyLong_FromLong(value);
    if (v == NULL) return -1;
    int r = PyObject_SetAttrString(obj, name, v);
    Py_DECREF(v);
    return r;
}

static int add_long(PyObject *obj, const char *name, long delta) {
    long now;
    if (delta == 0) return 0;
    if (get_long(obj, name, &now) < 0) return -1;
    return set_long(obj, name, now + delta);
}

static int get_buffer(PyObject *obj, const char *name, Py_buffer *view, int flags) {
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    int r = PyObject_GetBuffer(v, view, flags);
    Py_DECREF(v);
    return r;
}

static int close_open(Open *o) {
    int r = 0;
    if (o->assembly == NULL) return 0;
    if (o->dirty) {
        if (set_long(o->assembly, "groups_left", o->groups_left) < 0 ||
            set_long(o->assembly, "total", o->total) < 0)
            r = -1;
    }
    PyBuffer_Release(&o->buffer);
    PyBuffer_Release(&o->have);
    PyBuffer_Release(&o->counts);
    PyBuffer_Release(&o->group_k);
    Py_DECREF(o->assembly);
    o->assembly = NULL;
    o->dirty = 0;
    return r;
}

/* Open the assembly ``assembly`` of ``block``. -1 with an exception set on error. */
static int open_asm(Open *o, PyObject *assembly, long block) {
    PyObject *layout;
    o->buffer.obj = o->have.obj = o->counts.obj = o->group_k.obj = NULL;
    if (get_long(assembly, "kind", &o->kind) < 0 || get_long(assembly, "encoded_length",
                                                        &o->encoded_length) < 0 ||
        get_long(assembly, "groups_left", &o->groups_left) < 0 || get_long(assembly, "total",
                                                                      &o->total) < 0)
        return -1;
    layout = PyObject_GetAttrString(assembly, "layout");
    if (layout == NULL) return -1;
    if (get_long(layout, "symbol_size", &o->symbol_size) < 0) {
        Py_DECREF(layout);
        return -1;
    }
    Py_DECREF(layout);
    if (get_buffer(assembly, "buffer", &o->buffer, PyBUF_WRITABLE) < 0) goto fail;
    if (get_buffer(assembly, "have", &o->have, PyBUF_WRITABLE) < 0) goto fail;
    if (get_buffer(assembly, "counts", &o->counts, PyBUF_WRITABLE) < 0) goto fail;
    if (get_buffer(assembly, "group_k", &o->group_k, PyBUF_SIMPLE) < 0) goto fail;
    o->groups = (long)o->counts.len;
    if (o->have.len < o->groups * HAVE_BYTES || o->group_k.len < o->groups) {
        PyErr_SetString(PyExc_ValueError, "an assembly's buffers disagree with its groups");
        goto fail;
    }
    Py_INCREF(assembly);
    o->assembly = assembly;
    o->block = block;
    o->dirty = 0;
    return 0;
fail:
    if (o->buffer.obj) PyBuffer_Release(&o->buffer);
    if (o->have.obj) PyBuffer_Release(&o->have);
    if (o->counts.obj) PyBuffer_Release(&o->counts);
    if (o->group_k.obj) PyBuffer_Release(&o->group_k);
    return -1;
}

static PyObject *place_run(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *transfer, *buf_obj, *spans_obj, *stats = NULL, *blocks_obj = NULL,
             *assemblies = NULL;
    unsigned long tag;
    Py_ssize_t start, end, i;
    long nblocks, cursor, seq_seen;
    long arrived = 0, received = 0, duplicates = 0, stale = 0;
    Py_buffer buf = {0}, spans = {0}, blocks = {0};
    Open o = {0};
    int failed = 0;

    if (!PyArg_ParseTuple(args, "OkOOnn", &transfer, &tag, &buf_obj, &spans_obj, &start, &end))
        return NULL;
    if (PyObject_GetBuffer(buf_obj, &buf, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(spans_obj, &spans, PyBUF_FORMAT) < 0) goto error;
    if (spans.itemsize != 4 || spans.format == NULL || strcmp(spans.format, "I") != 0) {
        PyErr_SetString(PyExc_TypeError, "spans must be an array('I')");
        goto error;
    }
    if (start < 0 || end < start || end * 2 > spans.len / 4) {
        PyErr_SetString(PyExc_IndexError, "start..end outside spans");
        goto error;
    }
    if (get_long(transfer, "nblocks", &nblocks) < 0 || get_long(transfer, "cursor", &cursor) < 0
        || get_long(transfer, "seq_seen", &seq_seen) < 0)
        goto error;
    stats = PyObject_GetAttrString(transfer, "_stats");
    blocks_obj = PyObject_GetAttrString(transfer, "_blocks");
    assemblies = PyObject_GetAttrString(transfer, "_assemblies");
    if (stats == NULL || blocks_obj == NULL || assemblies == NULL) goto error;
    if (!PyDict_Check(assemblies)) {
        PyErr_SetString(PyExc_TypeError, "a transfer's assemblies must be a dict");
        goto error;
    }
    if (PyObject_GetBuffer(blocks_obj, &blocks, PyBUF_SIMPLE) < 0) goto error;
    if (blocks.len < nblocks) {
        PyErr_SetString(PyExc_ValueError, "a transfer's block table is shorter than nblocks");
        goto error;
    }

    const uint32_t *span = (const uint32_t *)spans.buf;
    const unsigned char *base = (const unsigned char *)buf.buf;
    const unsigned char *state_of = (const unsigned char *)blocks.buf;
    for (i = start; i < end; i++) {
        uint32_t off = span[2 * i], n = span[2 * i + 1];
        if (seq_seen < 0 || n < HEADER_SIZE || (Py_ssize_t)off + n > buf.len) break;
        const unsigned char *d = base + off;
        if (memcmp(d, PREFIX, 4) != 0) break;
        unsigned flags = d[4], esi = d[5];
        unsigned group = (unsigned)d[6] | (unsigned)d[7] << 8;
        uint32_t dtag = le32(d + 8), block = le32(d + 12), length = le32(d + 16),
                 seq = le32(d + 20);
        if (dtag != tag || (long)block >= nblocks ||
            ((long)block > cursor && !(flags & FLAG_REPAIR)))
            break;
        unsigned char state = state_of[block];
        if (state == STORED || state == DECODING) {
            stale++;
        } else {
            if (o.assembly == NULL || o.block != (long)block) {
                PyObject *key = PyLong_FromUnsignedLong(block), *assembly;
                if (key == NULL) goto error;
                assembly = PyDict_GetItemWithError(assemblies, key);
                Py_DECREF(key);
                if (assembly == NULL) {
                    if (PyErr_Occurred()) goto error;
                    break;  /* a new block: the full path makes its assembly */
                }
                if (close_open(&o) < 0 || open_asm(&o, assembly, block) < 0) goto error;
            }
            if (o.kind != (long)(flags & KIND_MASK) || o.encoded_length != (long)length ||
                (long)group >= o.groups)
                break;
            unsigned char *have = (unsigned char *)o.have.buf + group * HAVE_BYTES + (esi >> 3);
            unsigned char bit = (unsigned char)(1u << (esi & 7));
            unsigned char *count = (unsigned char *)o.counts.buf + group;
            unsigned k = ((const unsigned char *)o.group_k.buf)[group];
            if ((*have & bit) || *count >= k) {
                duplicates++;
            } else {
                if (esi >= k || (*count + 1u == k && o.groups_left == 1)) break;
                long size = o.symbol_size;
                long first = ((long)esi * o.groups + (long)group) * size;
                long last = first + size < (long)length ? first + size : (long)length;
                if ((long)n - HEADER_SIZE != last - first || last > (long)o.buffer.len) break;
                memcpy((unsigned char *)o.buffer.buf + first, d + HEADER_SIZE,
                       (size_t)(last - first));
                *have |= bit;
                *count += 1;
                o.total++;
                if (*count == k) o.groups_left--;
                o.dirty = 1;
                received++;
            }
        }
        arrived++;
        if ((long)seq > seq_seen) seq_seen = (long)seq;
    }
    goto done;
error:
    failed = 1;
done:
    if (close_open(&o) < 0) failed = 1;
    if (!failed) {
        if (set_long(transfer, "seq_seen", seq_seen) < 0 ||
            add_long(stats, "data_arrived", arrived) < 0 ||
            add_long(stats, "received", received) < 0 ||
            add_long(stats, "duplicates", duplicates) < 0 || add_long(stats, "stale", stale) < 0)
            failed = 1;
    }
    if (blocks.obj) PyBuffer_Release(&blocks);
    if (spans.obj) PyBuffer_Release(&spans);
    if (buf.obj) PyBuffer_Release(&buf);
    Py_XDECREF(stats);
    Py_XDECREF(blocks_obj);
    Py_XDECREF(assemblies);
    if (failed) return NULL;
    return PyLong_FromSsize_t(i);
}

/* source_datagrams(template, payload, symbol_size, groups, start, end, seq) -> list[bytes] */
static PyObject *source_datagrams(PyObject *self, PyObject *args) {
    Py_buffer template = {0}, payload = {0};
    Py_ssize_t size, groups, start, end;
    unsigned long long seq;
    PyObject *out = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nnnnK", &template, &payload, &size, &groups, &start, &end,
                          &seq))
        return NULL;
    if (template.len != HEADER_SIZE || size < 1 || groups < 1 || groups > 65535 || start < 0 ||
        end < start || (end > start && (end - 1) / groups > 255) ||
        (end > start && (end - 1) * size >= payload.len && !(payload.len == 0 && end == 1))) {
        PyErr_SetString(PyExc_ValueError, "source symbols outside the block's payload");
        goto done;
    }
    out = PyList_New(end - start);
    if (out == NULL) goto done;
    for (Py_ssize_t i = start; i < end; i++) {
        Py_ssize_t first = i * size, last = first + size;
        if (last > payload.len) last = payload.len;
        if (first > last) first = last;
        PyObject *dg = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + last - first);
        if (dg == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        unsigned char *d = (unsigned char *)PyBytes_AS_STRING(dg);
        memcpy(d, template.buf, HEADER_SIZE);
        unsigned esi = (unsigned)(i / groups), group = (unsigned)(i % groups);
        uint32_t s = (uint32_t)(seq + (unsigned long long)(i - start));
        d[5] = (unsigned char)esi;
        d[6] = (unsigned char)group;
        d[7] = (unsigned char)(group >> 8);
        d[20] = (unsigned char)s;
        d[21] = (unsigned char)(s >> 8);
        d[22] = (unsigned char)(s >> 16);
        d[23] = (unsigned char)(s >> 24);
        memcpy(d + HEADER_SIZE, (const unsigned char *)payload.buf + first, (size_t)(last - first));
        PyList_SET_ITEM(out, i - start, dg);
    }
done:
    PyBuffer_Release(&template);
    PyBuffer_Release(&payload);
    return out;
}

static PyMethodDef methods[] = {
    {"source_datagrams", source_datagrams, METH_VARARGS,
     "source_datagrams(template, payload, symbol_size, groups, start, end, seq) -> list of DATA "
     "datagrams (see protocol/datapath.py)"},
    {"place_run", place_run, METH_VARARGS,
     "place_run(transfer, tag, buf, spans, start, end) -> index of the first datagram left "
     "for the full path (see protocol/datapath.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "protocol._datapath",
    "Compiled twins of protocol.datapath's loops.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__datapath(void) { return PyModule_Create(&module); }
