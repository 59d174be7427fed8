/* The exporter's fast path: the life of a connection (accept, reading request heads,
 * sending a planned response, keep-alive, close) in C, on the trio thread.
 *
 * Theory of operation. `logfs serve` spent most of a short request's CPU on the
 * connection, not on the bytes: trio's accept, a task per socket, cancel scopes, a
 * wake-up through trio's scheduler for each readable or writable socket
 * (docs/performance.md, W6). Here one object owns an epoll instance holding the
 * listening socket and every connection it serves. Python (fastpath.py) waits for
 * that epoll descriptor to become readable with trio and then calls run(), which,
 * without blocking, handles what is ready: accept4 until EAGAIN, read, find the end
 * of a request head, and ask Python for a plan; send the planned head and sendfile
 * the planned file slices until EAGAIN; wait for the socket's room in its own epoll;
 * report the end of each response to Python; close. Nothing here waits: a socket
 * that is not ready stays in the epoll set.
 *
 * Python decides everything about a request. plan(head, peer) gets the raw head
 * (through its blank line) and returns None, or (head_bytes, slices, cork, token)
 * where slices is a tuple of (fd, position, length) whose descriptors this object
 * owns from then on (it closes them once sent). None hands the connection to
 * Python: handoff(fd, buffered, peer, timed_out) gets the socket and every byte read
 * from it and not yet answered, and the connection leaves this object (the trio path
 * in connection.py then answers it, whatever it is). done(token, body_bytes, how)
 * ends each planned response: how is DONE_OK, DONE_GONE (the client closed or
 * reset), DONE_TIMEOUT (it accepted no bytes for send_timeout seconds) or
 * DONE_FILE_ERROR (sendfile failed on the segment file, or it ended early).
 *
 * Deadlines: a connection waiting for a head is closed (idle) or handed off with
 * timed_out=True (half a head: Python answers 408) request_timeout seconds after
 * it started waiting; one whose client accepts no bytes for send_timeout seconds is
 * dropped. expire() does that; next_deadline() says when it must be called next.
 *
 * A connection holds a buffer of max_head + 1 bytes: a head that does not end
 * within it, a head that ends in bare LFs, and an end of file in the middle of a
 * head are all handed off (h11 says what is wrong with them).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DONE_OK 0
#define DONE_GONE 1
#define DONE_TIMEOUT 2
#define DONE_FILE_ERROR 3

#define MAX_EVENTS 64
#define MAX_ACCEPTS 64

enum { READING, SENDING };

typedef struct slice {
    int fd;
    off_t pos;
    size_t len;
} slice;

typedef struct conn {
    int fd;
    int state;
    uint32_t events; /* registered epoll events, 0 when not in the set */
    double deadline;
    char *buf;
    size_t len;
    PyObject *head;   /* bytes: the response head being sent */
    size_t head_off;
    slice *slices;
    int nslices, cur;
    int cork;
    long long body_sent;
    PyObject *token;
    PyObject *peer;   /* str "host:port" */
    struct conn *prev, *next;
} conn;

typedef struct {
    PyObject_HEAD
    int epfd;
    int lfd;
    PyObject *plan, *done, *handoff;
    double request_timeout, send_timeout;
    size_t bufsize;
    long max_connections;
    long extra_open; /* connections open elsewhere (the trio path), set by Python */
    long open;
    conn *conns;     /* all connections, a doubly linked list */
    /* counters, read by Python for /metrics */
    long long accepted, sendfile_calls, would_block, head_bytes, body_bytes, timeouts;
} Loop;

static double
now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
set_events(Loop *self, conn *c, uint32_t events)
{
    struct epoll_event ev;
    if (c->events == events)
        return 0;
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(self->epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return -1;
    c->events = events;
    return 0;
}

static void
release_response(conn *c)
{
    int i;
    for (i = 0; i < c->nslices; i++)
        if (c->slices[i].fd >= 0)
            close(c->slices[i].fd);
    PyMem_Free(c->slices);
    c->slices = NULL;
    c->nslices = c->cur = 0;
    Py_CLEAR(c->head);
    Py_CLEAR(c->token);
    c->head_off = 0;
    c->body_sent = 0;
}

/* Forget *c*: out of the epoll set and the list, its memory freed; the socket is
 * closed unless *keep_fd*. */
static void
drop_conn(Loop *self, conn *c, int keep_fd)
{
    /* closing the socket takes it out of the epoll set (no other descriptor refers
     * to it); one that lives on must leave the set first */
    if (keep_fd && c->events)
        epoll_ctl(self->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (!keep_fd)
        close(c->fd);
    release_response(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        self->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    Py_CLEAR(c->peer);
    PyMem_Free(c->buf);
    PyMem_Free(c);
    self->open--;
}

/* A callback's exception is a bug in Python: printed as unraisable, never lost. */
static void
call_done(Loop *self, conn *c, int how)
{
    PyObject *r;
    if (c->token == NULL)
        return;
    r = PyObject_CallFunction(self->done, "OLi", c->token, c->body_sent, how);
    if (r == NULL)
        PyErr_WriteUnraisable(self->done);
    Py_XDECREF(r);
    Py_CLEAR(c->token);
}

/* Give the connection to Python with what it sent and was not answered. */
static void
hand_off(Loop *self, conn *c, int timed_out)
{
    PyObject *data, *peer, *r;
    int fd = c->fd;
    data = PyBytes_FromStringAndSize(c->buf, (Py_ssize_t)c->len);
    peer = c->peer;
    Py_INCREF(peer);
    drop_conn(self, c, 1);
    if (data == NULL) {
        PyErr_WriteUnraisable(self->handoff);
        close(fd);
        Py_DECREF(peer);
        return;
    }
    r = PyObject_CallFunction(self->handoff, "iOOO", fd, data, peer, timed_out ? Py_True : Py_False);
    if (r == NULL) {
        PyErr_WriteUnraisable(self->handoff);
        close(fd);
    }
    Py_XDECREF(r);
    Py_DECREF(data);
    Py_DECREF(peer);
}

static void
set_cork(conn *c, int on)
{
    setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* Send what the response has left. Returns 1 when it is complete, 0 when the socket
 * is full (wait for EPOLLOUT), -1 when the connection was dropped (done() called). */
static int
send_response(Loop *self, conn *c)
{
    while (c->head != NULL && c->head_off < (size_t)PyBytes_GET_SIZE(c->head)) {
        size_t n = (size_t)PyBytes_GET_SIZE(c->head) - c->head_off;
        ssize_t k = send(c->fd, PyBytes_AS_STRING(c->head) + c->head_off, n,
                         MSG_NOSIGNAL | (c->nslices && !c->cork ? MSG_MORE : 0));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            call_done(self, c, DONE_GONE);
            drop_conn(self, c, 0);
            return -1;
        }
        c->head_off += (size_t)k;
        self->head_bytes += k;
    }
    while (c->cur < c->nslices) {
        slice *s = &c->slices[c->cur];
        ssize_t k;
        int err;
        if (s->len == 0) {
            c->cur++;
            continue;
        }
        Py_BEGIN_ALLOW_THREADS
        k = sendfile(c->fd, s->fd, &s->pos, s->len);
        err = errno;
        Py_END_ALLOW_THREADS
        if (k < 0) {
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                self->would_block++;
                return 0;
            }
            if (err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ESHUTDOWN)
                call_done(self, c, DONE_GONE);
            else
                call_done(self, c, DONE_FILE_ERROR);
            drop_conn(self, c, 0);
            return -1;
        }
        if (k == 0) { /* the segment file is shorter than planned */
            call_done(self, c, DONE_FILE_ERROR);
            drop_conn(self, c, 0);
            return -1;
        }
        self->sendfile_calls++;
        self->body_bytes += k;
        c->body_sent += k;
        s->len -= (size_t)k;
        if (s->len)
            return 0; /* a short count: the socket is full */
    }
    return 1;
}

static int process_buffer(Loop *self, conn *c);

/* The response in flight is complete: uncork, report it, wait for the next request. */
static void
end_response(Loop *self, conn *c)
{
    if (c->cork)
        set_cork(c, 0);
    call_done(self, c, DONE_OK);
    release_response(c);
    c->state = READING;
    c->deadline = now_mono() + self->request_timeout;
}

/* ... and answer what the client has already sent after it. */
static int
finish_response(Loop *self, conn *c)
{
    end_response(self, c);
    return process_buffer(self, c);
}

/* Where the head in c->buf ends (the index past its blank line), 0 when it has not
 * ended yet, -1 when it ends with bare LFs (h11 says what that is). */
static Py_ssize_t
head_end(const char *buf, size_t len)
{
    const char *crlf = memmem(buf, len, "\r\n\r\n", 4);
    const char *lf = memmem(buf, crlf ? (size_t)(crlf - buf) + 2 : len, "\n\n", 2);
    if (lf != NULL)
        return -1;
    return crlf ? (Py_ssize_t)(crlf + 4 - buf) : 0;
}

/* Take the plan's slices: (fd, position, length) tuples; the descriptors are ours from
 * here on, even when a later item is malformed. Returns -1 (an exception set) then. */
static int
take_slices(conn *c, PyObject *rslices)
{
    Py_ssize_t i, n = PyTuple_GET_SIZE(rslices);
    int bad = 0;
    c->slices = PyMem_Calloc(n ? (size_t)n : 1, sizeof(slice));
    if (c->slices == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    c->nslices = (int)n;
    for (i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(rslices, i);
        long long v[3] = {-1, -1, -1};
        int k;
        c->slices[i].fd = -1;
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
            bad = 1;
            continue;
        }
        for (k = 0; k < 3; k++) {
            v[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, k));
            if (v[k] < 0)
                bad = 1;
        }
        PyErr_Clear();
        c->slices[i].fd = v[0] > INT32_MAX ? -1 : (int)v[0];
        c->slices[i].pos = (off_t)(v[1] < 0 ? 0 : v[1]);
        c->slices[i].len = (size_t)(v[2] < 0 ? 0 : v[2]);
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "plan(): a slice must be (fd, position, length), none negative");
        return -1;
    }
    return 0;
}

/* Answer the complete heads in the buffer, then wait for more. Returns -1 if the
 * connection was dropped or handed off, 0 otherwise. */
static int
process_buffer(Loop *self, conn *c)
{
    for (;;) {
        Py_ssize_t end;
        PyObject *head, *r;
        int rc;
        if (c->len == 0)
            return set_events(self, c, EPOLLIN) < 0 ? (drop_conn(self, c, 0), -1) : 0;
        end = head_end(c->buf, c->len);
        if (end < 0 || (end == 0 && c->len >= self->bufsize)) {
            hand_off(self, c, 0);
            return -1;
        }
        if (end == 0)
            return set_events(self, c, EPOLLIN) < 0 ? (drop_conn(self, c, 0), -1) : 0;
        head = PyBytes_FromStringAndSize(c->buf, end);
        if (head == NULL) {
            PyErr_WriteUnraisable(self->plan);
            hand_off(self, c, 0);
            return -1;
        }
        r = PyObject_CallFunctionObjArgs(self->plan, head, c->peer, NULL);
        Py_DECREF(head);
        if (r == NULL) {
            PyErr_WriteUnraisable(self->plan);
            hand_off(self, c, 0);
            return -1;
        }
        if (r == Py_None) {
            Py_DECREF(r);
            hand_off(self, c, 0);
            return -1;
        }
        {
            PyObject *rhead, *rslices, *rcork, *rtoken;
            if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 4 ||
                !PyBytes_Check(rhead = PyTuple_GET_ITEM(r, 0)) ||
                !PyTuple_Check(rslices = PyTuple_GET_ITEM(r, 1))) {
                PyErr_SetString(PyExc_TypeError, "plan() must return None or (bytes, tuple, bool, token)");
                PyErr_WriteUnraisable(self->plan);
                Py_DECREF(r);
                hand_off(self, c, 0);
                return -1;
            }
            rcork = PyTuple_GET_ITEM(r, 2);
            rtoken = PyTuple_GET_ITEM(r, 3);
            if (take_slices(c, rslices) < 0) {
                PyErr_WriteUnraisable(self->plan);
                Py_DECREF(r);
                drop_conn(self, c, 0); /* closes what it took */
                return -1;
            }
            c->head = rhead;
            Py_INCREF(rhead);
            c->token = rtoken;
            Py_INCREF(rtoken);
            c->cork = PyObject_IsTrue(rcork) == 1;
            Py_DECREF(r);
        }
        /* the head is answered: what follows it is the next request (pipelined) */
        memmove(c->buf, c->buf + end, c->len - (size_t)end);
        c->len -= (size_t)end;
        c->state = SENDING;
        c->head_off = 0;
        c->cur = 0;
        c->body_sent = 0;
        if (c->cork)
            set_cork(c, 1);
        rc = send_response(self, c);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            c->deadline = now_mono() + self->send_timeout;
            if (set_events(self, c, EPOLLOUT) < 0) {
                call_done(self, c, DONE_GONE);
                drop_conn(self, c, 0);
                return -1;
            }
            return 0;
        }
        end_response(self, c);
    }
}

static void
on_readable(Loop *self, conn *c)
{
    for (;;) {
        ssize_t k;
        if (c->len >= self->bufsize) {
            process_buffer(self, c);
            return;
        }
        k = recv(c->fd, c->buf + c->len, self->bufsize - c->len, 0);
        if (k > 0) {
            c->len += (size_t)k;
            if (c->len < self->bufsize) {
                /* a short read: all that came (epoll is level-triggered: more wakes us) */
                process_buffer(self, c);
                return;
            }
            continue;
        }
        if (k == 0) { /* the client closed: between requests just close */
            if (c->len == 0)
                drop_conn(self, c, 0);
            else
                hand_off(self, c, 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            process_buffer(self, c);
            return;
        }
        drop_conn(self, c, 0); /* reset */
        return;
    }
}

static void
on_writable(Loop *self, conn *c)
{
    int rc = send_response(self, c);
    if (rc < 0)
        return;
    if (rc == 0) {
        c->deadline = now_mono() + self->send_timeout; /* it took bytes: progress */
        return;
    }
    finish_response(self, c);
}

static PyObject *
format_peer(struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN];
    int port = 0;
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    } else {
        return PyUnicode_FromString("-");
    }
    return PyUnicode_FromFormat("%s:%d", host, port);
}

/* Returns -1 when accept4 failed with a resource error (Python pauses), 0 otherwise. */
static int
on_listener(Loop *self)
{
    int i;
    for (i = 0; i < MAX_ACCEPTS; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int one = 1;
        conn *c;
        int fd = accept4(self->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                return -1;
            return 0; /* EAGAIN, or an error the next wake-up sees again */
        }
        self->accepted++;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
            close(fd); /* already reset by the client */
            continue;
        }
        c = PyMem_Calloc(1, sizeof(conn));
        if (c)
            c->buf = PyMem_Malloc(self->bufsize);
        if (c == NULL || c->buf == NULL || (c->peer = format_peer(&ss)) == NULL) {
            PyErr_Clear();
            if (c) {
                PyMem_Free(c->buf);
                PyMem_Free(c);
            }
            close(fd);
            return -1;
        }
        c->fd = fd;
        c->state = READING;
        c->deadline = now_mono() + self->request_timeout;
        c->next = self->conns;
        if (self->conns)
            self->conns->prev = c;
        self->conns = c;
        self->open++;
        if (self->open + self->extra_open > self->max_connections) {
            hand_off(self, c, 0); /* Python refuses it (503) */
            continue;
        }
        on_readable(self, c); /* the head has often come with the connection */
    }
    return 0;
}

static void
expire(Loop *self)
{
    double now = now_mono();
    conn *c = self->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->deadline > now)
            continue;
        self->timeouts++;
        if (c->state == SENDING) {
            call_done(self, c, DONE_TIMEOUT);
            drop_conn(self, c, 0);
        } else if (c->len) {
            hand_off(self, c, 1); /* half a head: 408 */
        } else {
            drop_conn(self, c, 0); /* idle */
        }
    }
}

/* ---------------------------------------------------------------- the type */

static int
Loop_init(Loop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"listen_fd", "plan", "done", "handoff", "request_timeout",
                             "send_timeout", "max_head", "max_connections", NULL};
    struct epoll_event ev;
    Py_ssize_t max_head;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOOOddnl", kwlist, &self->lfd, &self->plan,
                                     &self->done, &self->handoff, &self->request_timeout,
                                     &self->send_timeout, &max_head, &self->max_connections))
        return -1;
    if (max_head < 64) {
        PyErr_SetString(PyExc_ValueError, "max_head must be at least 64");
        return -1;
    }
    self->bufsize = (size_t)max_head + 1;
    Py_INCREF(self->plan);
    Py_INCREF(self->done);
    Py_INCREF(self->handoff);
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, self->lfd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static PyObject *
Loop_close(Loop *self, PyObject *Py_UNUSED(ignored))
{
    while (self->conns)
        drop_conn(self, self->conns, 0);
    if (self->epfd >= 0) {
        close(self->epfd);
        self->epfd = -1;
    }
    Py_RETURN_NONE;
}

static void
Loop_dealloc(Loop *self)
{
    while (self->conns)
        drop_conn(self, self->conns, 0);
    if (self->epfd >= 0)
        close(self->epfd);
    Py_XDECREF(self->plan);
    Py_XDECREF(self->done);
    Py_XDECREF(self->handoff);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Loop *self = (Loop *)type->tp_alloc(type, 0);
    if (self)
        self->epfd = -1;
    return (PyObject *)self;
}

static PyObject *
Loop_run(Loop *self, PyObject *Py_UNUSED(ignored))
{
    struct epoll_event evs[MAX_EVENTS];
    int n, i, starved = 0;
    if (self->epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "the loop is closed");
        return NULL;
    }
    n = epoll_wait(self->epfd, evs, MAX_EVENTS, 0);
    if (n < 0 && errno != EINTR)
        return PyErr_SetFromErrno(PyExc_OSError);
    for (i = 0; i < n; i++) {
        conn *c = evs[i].data.ptr;
        if (c == NULL) {
            if (on_listener(self) < 0)
                starved = 1;
            continue;
        }
        /* a connection dropped earlier in this batch is not in a later event: each
         * fd is in the set once and events of one wait are for distinct fds */
        if (c->state == READING)
            on_readable(self, c);
        else
            on_writable(self, c);
    }
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(starved);
}

static PyObject *
Loop_expire(Loop *self, PyObject *Py_UNUSED(ignored))
{
    expire(self);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Loop_next_deadline(Loop *self, PyObject *Py_UNUSED(ignored))
{
    double d = -1;
    conn *c;
    for (c = self->conns; c; c = c->next)
        if (d < 0 || c->deadline < d)
            d = c->deadline;
    if (d < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(d);
}

static PyObject *
Loop_fileno(Loop *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->epfd);
}

static PyObject *
Loop_stats(Loop *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{sLsLsLsLsLsLsl}", "accepted", self->accepted, "sendfile_calls",
                         self->sendfile_calls, "would_block", self->would_block, "head_bytes",
                         self->head_bytes, "body_bytes", self->body_bytes, "timeouts",
                         self->timeouts, "open", self->open);
}

static PyObject *
Loop_get_open(Loop *self, void *closure)
{
    return PyLong_FromLong(self->open);
}

static PyObject *
Loop_get_extra(Loop *self, void *closure)
{
    return PyLong_FromLong(self->extra_open);
}

static int
Loop_set_extra(Loop *self, PyObject *value, void *closure)
{
    long v;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete extra_open");
        return -1;
    }
    v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    self->extra_open = v;
    return 0;
}

static PyMethodDef Loop_methods[] = {
    {"run", (PyCFunction)Loop_run, METH_NOARGS,
     "run() -> bool: handle what is ready, without blocking. True if "
     "accept failed for lack of descriptors or memory (pause before the next call)."},
    {"expire", (PyCFunction)Loop_expire, METH_NOARGS,
     "expire(): close or hand off the connections whose deadline has passed."},
    {"next_deadline", (PyCFunction)Loop_next_deadline, METH_NOARGS,
     "next_deadline() -> float | None: the earliest deadline (time.monotonic) to call expire() by."},
    {"fileno", (PyCFunction)Loop_fileno, METH_NOARGS,
     "fileno() -> int: the epoll descriptor, readable when run() has something to do."},
    {"stats", (PyCFunction)Loop_stats, METH_NOARGS, "stats() -> dict: the counters."},
    {"close", (PyCFunction)Loop_close, METH_NOARGS,
     "close(): close every connection and the epoll descriptor (not the listener)."},
    {NULL}};

static PyGetSetDef Loop_getset[] = {
    {"open", (getter)Loop_get_open, NULL, "connections held here", NULL},
    {"extra_open", (getter)Loop_get_extra, (setter)Loop_set_extra,
     "connections open elsewhere, counted against max_connections", NULL},
    {NULL}};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "logfs.exporter._fastpath.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Loop(listen_fd, plan, done, handoff, request_timeout, send_timeout, max_head, "
              "max_connections): the exporter's connections in C (see the module's source).",
    .tp_new = Loop_new,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
    .tp_getset = Loop_getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastpath",
                                    "The exporter's connection loop in C (fastpath.py).", -1, NULL};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *m;
    if (PyType_Ready(&LoopType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0 ||
        PyModule_AddIntConstant(m, "DONE_OK", DONE_OK) < 0 ||
        PyModule_AddIntConstant(m, "DONE_GONE", DONE_GONE) < 0 ||
        PyModule_AddIntConstant(m, "DONE_TIMEOUT", DONE_TIMEOUT) < 0 ||
        PyModule_AddIntConstant(m, "DONE_FILE_ERROR", DONE_FILE_ERROR) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
