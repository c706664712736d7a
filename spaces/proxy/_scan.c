/* The syntax pass over a request or response head, in C: the proxy's per-request hot path.
 *
 * ``scan_request`` and ``scan_response`` do exactly what ``_scan_request_py`` and ``_scan_response_py`` in
 * http1.py do (that Python is the reference; tests/proxy/test_http1_scan.py holds the two to the same answers on
 * every case of the unit tests and on mutated heads):
 *
 *   scan_request(raw)  -> (method, target, version, low, found, host)   or raises HttpError(400/405/505, ...)
 *   scan_response(raw) -> (status, low, quick)                         or raises HttpError(502, ...)
 *
 * ``raw`` is a head without its final CRLFCRLF. ``low`` is raw with ASCII letters lowercased (offsets unchanged).
 * ``found`` lists the lowercased names of the request fields the proxy acts on, in order. ``host`` is the first
 * Host value, lowercased and stripped of blanks, or None. ``quick`` is (keep_alive, length or -1, the head to send
 * on) when the only response fields the proxy acts on (Connection, Keep-Alive, Transfer-Encoding, Content-Length,
 * Proxy-*) are at most one valid Content-Length and one "Connection: keep-alive" (that line cut out of the head
 * sent on), else None.
 *
 * Every index below is checked against the buffer's length before it is read; nothing is written outside the
 * buffers this module allocates at their exact sizes (``low``, and the quick answer's head).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *HttpError = NULL;   /* spaces.proxy.http1.HttpError, given by set_error() */

/* tchar (RFC 9110 5.6.2) and a field value's bytes: anything but a control byte (tab allowed) */
static unsigned char TCHAR[256];
static unsigned char VALUE[256];
static unsigned char LOWER[256];

/* names the proxy acts on; the exact ones are returned as these shared objects */
enum { N_HOST, N_CL, N_TRANSFER, N_CONN, N_FORWARDED, N_KEEPALIVE, N_TE, N_TRAILER, N_UPGRADE, N_XHFAUTH,
       N_XREALIP, N_COUNT };
static const char *NAMES[N_COUNT] = {"host", "content-length", "transfer-encoding", "connection", "forwarded",
                                     "keep-alive", "te", "trailer", "upgrade", "x-hf-authorization", "x-real-ip"};
static Py_ssize_t NAME_LEN[N_COUNT];
static PyObject *NAME_OBJ[N_COUNT];
/* the exact names of the response fields the proxy acts on (_RESP_SPECIAL in http1.py; and proxy-*, set-cookie) */
static const int RESPONSE_NAMES[] = {N_CONN, N_KEEPALIVE, N_TRANSFER, N_CL};
static PyObject *V11, *V10;

static PyObject *
fail(int status, const char *message)
{
    PyObject *exc = PyObject_CallFunction(HttpError ? HttpError : PyExc_ValueError, "is", status, message);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* The end of the first line: the index of its CR (followed by LF), n when the head is one line, or -1 when a
 * bare CR or LF comes first. */
static Py_ssize_t
first_line_end(const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] == '\r')
            return (i + 1 < n && p[i + 1] == '\n') ? i : -1;
        if (p[i] == '\n')
            return -1;
    }
    return n;
}

/* Which of the names above (or a prefixed one) the lowercased name p[0:len] is: an index, N_COUNT for a
 * proxy-/x-forwarded-/x-spaces- name, -1 for none. Only ``response`` names count when ``response`` is set. */
static int
special(const unsigned char *p, Py_ssize_t len, int response)
{
    if (len >= 6 && memcmp(p, "proxy-", 6) == 0)
        return N_COUNT;
    if (response) {
        /* an app's Set-Cookie is checked by the proxy (spaces/proxy/cookies.py): such a head is never quick */
        if (len == 10 && memcmp(p, "set-cookie", 10) == 0)
            return N_COUNT;
        for (size_t r = 0; r < sizeof(RESPONSE_NAMES) / sizeof(RESPONSE_NAMES[0]); r++) {
            int k = RESPONSE_NAMES[r];
            if (NAME_LEN[k] == len && memcmp(p, NAMES[k], len) == 0)
                return k;
        }
        return -1;
    }
    if ((len >= 12 && memcmp(p, "x-forwarded-", 12) == 0) || (len >= 9 && memcmp(p, "x-spaces-", 9) == 0))
        return N_COUNT;
    for (int k = 0; k < N_COUNT; k++) {
        if (NAME_LEN[k] == len && memcmp(p, NAMES[k], len) == 0)
            return k;
    }
    return -1;
}

/* One field line starting at i: name (tchar+) ":" value, ending at n or at a CRLF followed by more. Sets the name's
 * end (the colon), the value's end, and the next line's start (n when this was the last). 0, or -1 if malformed. */
static int
field_line(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t *colon, Py_ssize_t *vend,
           Py_ssize_t *next)
{
    Py_ssize_t j = i;
    while (j < n && TCHAR[p[j]])
        j++;
    if (j == i || j >= n || p[j] != ':')
        return -1;
    *colon = j++;
    while (j < n && VALUE[p[j]])
        j++;
    *vend = j;
    if (j == n) {
        *next = n;
        return 0;
    }
    /* stopped at a control byte: only a CRLF with another line after it is allowed */
    if (p[j] != '\r' || j + 2 >= n || p[j + 1] != '\n')
        return -1;
    *next = j + 2;
    return 0;
}

static PyObject *
lowered(const unsigned char *p, Py_ssize_t n)
{
    PyObject *low = PyBytes_FromStringAndSize(NULL, n);
    if (low == NULL)
        return NULL;
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(low);
    for (Py_ssize_t i = 0; i < n; i++)
        q[i] = LOWER[p[i]];
    return low;
}

static PyObject *
name_object(int k, const unsigned char *p, Py_ssize_t len)
{
    if (k < N_COUNT) {
        Py_INCREF(NAME_OBJ[k]);
        return NAME_OBJ[k];
    }
    return PyBytes_FromStringAndSize((const char *)p, len);
}

/* The bytes of the one argument, or NULL with a TypeError (only bytes: a mutable buffer could change under us). */
static const unsigned char *
bytes_arg(PyObject *arg, const char *func, Py_ssize_t *n)
{
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() takes bytes", func);
        return NULL;
    }
    *n = PyBytes_GET_SIZE(arg);
    return (const unsigned char *)PyBytes_AS_STRING(arg);
}

static const char BAD_HEADER[] = "malformed header line (bare CR/LF, folding or a space before ':')";

static PyObject *
scan_request(PyObject *module, PyObject *arg)
{
    Py_ssize_t n;
    const unsigned char *p = bytes_arg(arg, "scan_request", &n);
    if (p == NULL)
        return NULL;

    Py_ssize_t line_end = first_line_end(p, n);
    if (line_end < 0)
        return fail(400, "malformed request line");
    Py_ssize_t sp1 = -1, sp2 = -1;
    for (Py_ssize_t i = 0; i < line_end; i++) {
        if (p[i] == ' ') {
            if (sp1 < 0)
                sp1 = i;
            else if (sp2 < 0)
                sp2 = i;
            else
                return fail(400, "malformed request line");
        }
    }
    if (sp2 < 0)
        return fail(400, "malformed request line");
    const unsigned char *ver = p + sp2 + 1;
    Py_ssize_t ver_len = line_end - sp2 - 1;
    PyObject *version;
    if (ver_len == 8 && memcmp(ver, "HTTP/1.1", 8) == 0)
        version = V11;
    else if (ver_len == 8 && memcmp(ver, "HTTP/1.0", 8) == 0)
        version = V10;
    else
        return fail(ver_len >= 5 && memcmp(ver, "HTTP/", 5) == 0 ? 505 : 400,
                    "only HTTP/1.0 and HTTP/1.1 are served");
    if (sp1 == 0)
        return fail(400, "unsupported request method");
    for (Py_ssize_t i = 0; i < sp1; i++) {
        if (!TCHAR[p[i]])
            return fail(400, "unsupported request method");
    }
    if (sp1 == 7 && memcmp(p, "CONNECT", 7) == 0)
        return fail(405, "unsupported request method");
    const unsigned char *target = p + sp1 + 1;
    Py_ssize_t target_len = sp2 - sp1 - 1;
    int origin = target_len > 0 && target[0] == '/';
    int asterisk = target_len == 1 && target[0] == '*' && sp1 == 7 && memcmp(p, "OPTIONS", 7) == 0;
    if (!(origin || asterisk) || memchr(target, '#', target_len) != NULL)
        return fail(400, "the request target must be a path (origin-form)");

    PyObject *low = lowered(p, n);
    if (low == NULL)
        return NULL;
    const unsigned char *q = (const unsigned char *)PyBytes_AS_STRING(low);
    PyObject *found = PyList_New(0);
    PyObject *host = NULL;
    if (found == NULL)
        goto error;
    if (line_end < n) {
        Py_ssize_t i = line_end + 2, colon, vend, next;
        do {
            if (field_line(q, i, n, &colon, &vend, &next) < 0) {
                fail(400, BAD_HEADER);
                goto error;
            }
            int k = special(q + i, colon - i, 0);
            if (k >= 0) {
                PyObject *name = name_object(k, q + i, colon - i);
                if (name == NULL || PyList_Append(found, name) < 0) {
                    Py_XDECREF(name);
                    goto error;
                }
                Py_DECREF(name);
                if (k == N_HOST && host == NULL) {
                    Py_ssize_t a = colon + 1, b = vend;
                    while (a < b && (q[a] == ' ' || q[a] == '\t'))
                        a++;
                    while (b > a && (q[b - 1] == ' ' || q[b - 1] == '\t'))
                        b--;
                    host = PyBytes_FromStringAndSize((const char *)q + a, b - a);
                    if (host == NULL)
                        goto error;
                }
            }
            i = next;
        } while (i < n);
    }
    PyObject *method = PyBytes_FromStringAndSize((const char *)p, sp1);
    PyObject *target_obj = method ? PyBytes_FromStringAndSize((const char *)target, target_len) : NULL;
    if (target_obj == NULL) {
        Py_XDECREF(method);
        goto error;
    }
    if (host == NULL) {
        host = Py_None;
        Py_INCREF(host);
    }
    Py_INCREF(version);
    return Py_BuildValue("(NNNNNN)", method, target_obj, version, low, found, host);

error:
    Py_DECREF(low);
    Py_XDECREF(found);
    Py_XDECREF(host);
    return NULL;
}

static PyObject *
scan_response(PyObject *module, PyObject *arg)
{
    Py_ssize_t n;
    const unsigned char *p = bytes_arg(arg, "scan_response", &n);
    if (p == NULL)
        return NULL;
    static const char BAD[] = "the app sent a malformed response";

    /* "HTTP/1.0" or "HTTP/1.1", a space, three digits, then the end of the line or a space and a reason */
    Py_ssize_t line_end = first_line_end(p, n);
    if (line_end < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' '
            || p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9'
            || (line_end > 12 && p[12] != ' '))
        return fail(502, BAD);
    for (Py_ssize_t i = 13; i < line_end; i++) {
        if (!VALUE[p[i]])
            return fail(502, BAD);
    }
    long status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    PyObject *low = lowered(p, n);
    if (low == NULL)
        return NULL;
    const unsigned char *q = (const unsigned char *)PyBytes_AS_STRING(low);
    /* the quick answer's inputs: the one Content-Length value, the one Connection line and its value */
    int quick = 1;
    Py_ssize_t cl_a = -1, cl_b = -1, conn_at = -1, conn_end = -1, conn_a = -1, conn_b = -1;
    if (line_end < n) {
        Py_ssize_t i = line_end + 2, colon, vend, next;
        do {
            if (field_line(q, i, n, &colon, &vend, &next) < 0) {
                fail(502, BAD);
                goto error;
            }
            int k = special(q + i, colon - i, 1);
            if (k >= 0) {
                Py_ssize_t a = colon + 1, b = vend;
                while (a < vend && (q[a] == ' ' || q[a] == '\t'))
                    a++;
                while (b > a && (q[b - 1] == ' ' || q[b - 1] == '\t'))
                    b--;
                if (k == N_CL && cl_a < 0) {
                    cl_a = a;
                    cl_b = b;
                } else if (k == N_CONN && conn_at < 0) {
                    conn_at = i - 2;  /* the CRLF before the line */
                    conn_end = vend;
                    conn_a = a;
                    conn_b = b;
                } else {
                    quick = 0;
                }
            }
            i = next;
        } while (i < n);
    }
    long long length = -1;
    if (quick && conn_at >= 0 && !(conn_b - conn_a == 10 && memcmp(q + conn_a, "keep-alive", 10) == 0))
        quick = 0;
    if (quick && cl_a >= 0) {
        if (cl_b - cl_a < 1 || cl_b - cl_a > 18)
            quick = 0;
        length = 0;
        for (Py_ssize_t j = cl_a; quick && j < cl_b; j++) {
            if (q[j] < '0' || q[j] > '9')
                quick = 0;
            else
                length = length * 10 + (q[j] - '0');
        }
    }
    PyObject *quick_obj = Py_None;
    if (!quick) {
        Py_INCREF(quick_obj);
    } else {
        /* the head to send on: the bytes as received, less the Connection line, then the blank line */
        Py_ssize_t keep = conn_at < 0 ? n : conn_at, tail = conn_at < 0 ? n : conn_end;
        PyObject *data = PyBytes_FromStringAndSize(NULL, keep + (n - tail) + 4);
        if (data == NULL)
            goto error;
        char *d = PyBytes_AS_STRING(data);
        memcpy(d, p, keep);
        memcpy(d + keep, p + tail, n - tail);
        memcpy(d + keep + (n - tail), "\r\n\r\n", 4);
        int keep_alive = conn_at >= 0 || p[7] == '1';
        quick_obj = Py_BuildValue("(OLN)", keep_alive ? Py_True : Py_False, length, data);
        if (quick_obj == NULL)
            goto error;
    }
    return Py_BuildValue("(lNN)", status, low, quick_obj);

error:
    Py_DECREF(low);
    return NULL;
}

static PyObject *
set_error(PyObject *module, PyObject *cls)
{
    Py_INCREF(cls);
    Py_XSETREF(HttpError, cls);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan_request", scan_request, METH_O, "Check a request head's syntax; (method, target, version, low, found, host)."},
    {"scan_response", scan_response, METH_O, "Check a response head's syntax; (status, low, quick)."},
    {"set_error", set_error, METH_O, "The exception class raised for a malformed head: cls(status, message)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "spaces.proxy._scan", "The HTTP/1.1 head scanner in C (see http1.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    const char *tchar = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        TCHAR[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                   || (c != 0 && strchr(tchar, c) != NULL);
        VALUE[c] = !(c <= 0x08 || (c >= 0x0a && c <= 0x1f) || c == 0x7f);
        LOWER[c] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    }
    for (int k = 0; k < N_COUNT; k++) {
        NAME_LEN[k] = (Py_ssize_t)strlen(NAMES[k]);
        NAME_OBJ[k] = PyBytes_FromString(NAMES[k]);
        if (NAME_OBJ[k] == NULL)
            return NULL;
    }
    V11 = PyBytes_FromString("HTTP/1.1");
    V10 = PyBytes_FromString("HTTP/1.0");
    if (V11 == NULL || V10 == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
