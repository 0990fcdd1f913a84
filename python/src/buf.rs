//! The buffer protocol, both ways: borrowing the bytes of a caller's object (`bytes`,
//! `bytearray`, `memoryview`, a contiguous numpy array, ...) and exporting ours (a frame in
//! place, a loan) to `memoryview`/`np.frombuffer`.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// A contiguous buffer borrowed from a Python object (`PyObject_GetBuffer`), released
/// (`PyBuffer_Release`) on drop, which must happen with the GIL held (it does: these live in
/// the frames of `#[pymethods]`, whose GIL outlives them).
pub(crate) struct Borrowed {
    view: Box<ffi::Py_buffer>,
}

impl Borrowed {
    /// The bytes of `obj`, read-only; any C-contiguous buffer (numpy arrays of any dtype are
    /// taken as their bytes).
    pub(crate) fn read(obj: &Bound<'_, PyAny>) -> PyResult<Borrowed> {
        Self::get(obj, ffi::PyBUF_SIMPLE)
    }

    /// The bytes of `obj`, writable (`bytearray`, a writable `memoryview`, a numpy array, ...).
    pub(crate) fn write(obj: &Bound<'_, PyAny>) -> PyResult<Borrowed> {
        Self::get(obj, ffi::PyBUF_WRITABLE)
    }

    fn get(obj: &Bound<'_, PyAny>, flags: c_int) -> PyResult<Borrowed> {
        let mut view: Box<MaybeUninit<ffi::Py_buffer>> = Box::new(MaybeUninit::uninit());
        // SAFETY: `obj` is a live object (we hold a reference and the GIL); `view` points to
        // writable memory for one `Py_buffer`, which the call fills in on success.
        // PyBUF_SIMPLE (with or without PyBUF_WRITABLE) asks for one contiguous run of bytes:
        // an exporter that cannot give one fails.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
        if rc != 0 {
            return Err(PyErr::take(obj.py())
                .unwrap_or_else(|| PyBufferError::new_err("cannot get a buffer")));
        }
        // SAFETY: `PyObject_GetBuffer` succeeded, so it initialised the view.
        let view = unsafe { Box::from_raw(Box::into_raw(view).cast::<ffi::Py_buffer>()) };
        Ok(Borrowed { view })
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.view.len as usize
    }

    /// The bytes. (Another Python thread may write them while the GIL is released, as with any
    /// extension that releases it around a copy: the bytes may then be odd, never out of
    /// bounds.)
    pub(crate) fn bytes(&self) -> &[u8] {
        if self.len() == 0 {
            return &[];
        }
        // SAFETY: a PyBUF_SIMPLE view is `len` contiguous bytes at `buf`, pinned by the export
        // until `PyBuffer_Release` (in `drop`, after every borrow of `self` ends).
        unsafe { std::slice::from_raw_parts(self.view.buf as *const u8, self.len()) }
    }

    /// The bytes, writable (only for a buffer from [`write`](Self::write)).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        assert_eq!(self.view.readonly, 0, "a read-only buffer written");
        if self.len() == 0 {
            return &mut [];
        }
        // SAFETY: as in `bytes`, and the exporter granted PyBUF_WRITABLE; `&mut self` makes this
        // the only slice of it we hand out.
        unsafe { std::slice::from_raw_parts_mut(self.view.buf.cast::<u8>(), self.len()) }
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful `PyObject_GetBuffer` and is released once,
        // here, with the GIL held (see the type's docs).
        unsafe { ffi::PyBuffer_Release(&mut *self.view) };
    }
}

/// Fill `view` to export `len` bytes at `ptr` on behalf of `owner` (a new reference to it is
/// stored in the view, so it outlives every export).
///
/// # Safety
/// `view` is the pointer `__getbuffer__` received; `ptr .. ptr + len` stays valid (and, unless
/// `readonly`, writable) until the matching `__releasebuffer__`.
pub(crate) unsafe fn export(
    view: *mut ffi::Py_buffer,
    owner: &Bound<'_, PyAny>,
    ptr: *mut u8,
    len: usize,
    readonly: bool,
    flags: c_int,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("a null Py_buffer"));
    }
    if readonly && flags & ffi::PyBUF_WRITABLE != 0 {
        return Err(PyBufferError::new_err(
            "a received frame is read-only (copy it with bytes(frame) or recv_into to modify it)",
        ));
    }
    // SAFETY: per this function's contract; `PyBuffer_FillInfo` takes its own reference to
    // `owner` and fills shape/strides/format as `flags` asks (one dimension of bytes).
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast(),
            len as ffi::Py_ssize_t,
            c_int::from(readonly),
            flags,
        )
    };
    if rc != 0 {
        return Err(PyErr::take(owner.py())
            .unwrap_or_else(|| PyBufferError::new_err("PyBuffer_FillInfo failed")));
    }
    Ok(())
}
