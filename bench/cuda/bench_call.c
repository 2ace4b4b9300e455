/*
 * bench_call.c: the Python module ssim_bench_call, which calls ssim_bench_compute_async
 * (bench_engine.c) for bench_ssim.py with a fraction of the overhead of a ctypes call.
 *
 * bench_ssim.py times a call from Python with CUDA events, so whatever the call spends on the
 * host before its kernel is launched counts in its time. fused-ssim, the peer it is compared
 * with, is a compiled extension; through ctypes (argument conversions, a foreign-function call)
 * the engine paid several microseconds more for being reached from Python, which on the small
 * shapes is several percent of the time. This module is the compiled path: its one function
 * takes the address of ssim_bench_compute_async (from ctypes, once) and plain integers, so it
 * needs no link to the engine and always calls the library that ctypes loaded.
 *
 * Built against the limited API of Python 3.10 (abi3), so one build loads in any later Python.
 */
#define Py_LIMITED_API 0x030A0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <string.h>

typedef int (*bench_compute_async_fn)(void *engine, int dtype, int padding, size_t batch,
                                      size_t channels, size_t height, size_t width,
                                      const void *img1, const void *img2, double *scores,
                                      double *channel_scores, float *map, float *block_means,
                                      float *grad_img1, float *grad_img2, void *stream);

enum {
  ARG_FN,
  ARG_ENGINE,
  ARG_DTYPE,
  ARG_PADDING,
  ARG_SHAPE,
  ARG_PTRS = ARG_SHAPE + 4,
  ARG_COUNT = ARG_PTRS + 9
};

/* An address argument: an int, or None for NULL. Returns -1 with a Python error set. */
static int arg_address(PyObject *arg, void **out) {
  if (arg == Py_None) {
    *out = NULL;
    return 0;
  }
  *out = PyLong_AsVoidPtr(arg);
  return *out == NULL && PyErr_Occurred() ? -1 : 0;
}

static int arg_size(PyObject *arg, size_t *out) {
  *out = PyLong_AsSize_t(arg);
  return *out == (size_t)-1 && PyErr_Occurred() ? -1 : 0;
}

static int arg_int(PyObject *arg, int *out) {
  const long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred())
    return -1;
  if (v < -2147483647L - 1 || v > 2147483647L) {
    PyErr_SetString(PyExc_OverflowError, "an int argument is out of range");
    return -1;
  }
  *out = (int)v;
  return 0;
}

/*
 * compute_async(fn, engine, dtype, padding, batch, channels, height, width, img1, img2, scores,
 *               channel_scores, map, block_means, grad_img1, grad_img2, stream) -> int
 *
 * fn is the address of ssim_bench_compute_async, engine the handle of ssim_bench_open, the
 * pointers are addresses (None: NULL). Returns the engine's return code: 0, or a negative
 * ssim error code whose message ssim_bench_last_error gives.
 */
static PyObject *bench_compute_async(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != ARG_COUNT) {
    PyErr_Format(PyExc_TypeError, "compute_async takes %d arguments (%zd given)", ARG_COUNT, nargs);
    return NULL;
  }
  void *fn_address, *engine;
  int dtype, padding;
  size_t shape[4];
  void *ptrs[9];
  if (arg_address(args[ARG_FN], &fn_address) < 0 || arg_address(args[ARG_ENGINE], &engine) < 0 ||
      arg_int(args[ARG_DTYPE], &dtype) < 0 || arg_int(args[ARG_PADDING], &padding) < 0)
    return NULL;
  for (int k = 0; k < 4; k++)
    if (arg_size(args[ARG_SHAPE + k], &shape[k]) < 0)
      return NULL;
  for (int k = 0; k < 9; k++)
    if (arg_address(args[ARG_PTRS + k], &ptrs[k]) < 0)
      return NULL;
  if (fn_address == NULL || engine == NULL) {
    PyErr_SetString(PyExc_ValueError, "compute_async: the function and the engine are required");
    return NULL;
  }
  /* An object pointer to a function pointer: POSIX guarantees the conversion (dlsym relies on
   * it), ISO C does not. */
  bench_compute_async_fn fn;
  memcpy(&fn, &fn_address, sizeof fn);
  const int rc = fn(engine, dtype, padding, shape[0], shape[1], shape[2], shape[3], ptrs[0],
                    ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6], ptrs[7], ptrs[8]);
  return PyLong_FromLong(rc);
}

static PyMethodDef bench_methods[] = {
    {"compute_async", (PyCFunction)(void (*)(void))bench_compute_async, METH_FASTCALL,
     "compute_async(fn, engine, dtype, padding, batch, channels, height, width, img1, img2, "
     "scores, channel_scores, map, block_means, grad_img1, grad_img2, stream) -> int: calls "
     "ssim_bench_compute_async at address fn."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bench_module = {
    PyModuleDef_HEAD_INIT,
    "ssim_bench_call",
    "The engine's asynchronous call for bench_ssim.py, without ctypes' overhead.",
    0,
    bench_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit_ssim_bench_call(void);
PyMODINIT_FUNC PyInit_ssim_bench_call(void) {
  return PyModule_Create(&bench_module);
}
