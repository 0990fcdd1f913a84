//! The element of a typed channel as Python sees it, and the conversions between Python values
//! and the element's bytes.
//!
//! An element is a numpy dtype (`dtype=`: size `dtype.itemsize`, alignment `dtype.alignment`)
//! or a `struct` format (`format=`: size `struct.calcsize`, alignment the largest of its
//! fields', as a C compiler lays the struct out), under a `type_name` that the Rust side names
//! with `Options::type_name` (the library hashes it: Python passes the name only).
//!
//! - **Sending** ([`Codec::encode`], [`Codec::batch`]): `bytes` of exactly one element are
//!   taken as they are; a Python `int`/`float` for a plain native-endian integer or float dtype
//!   is converted here (the common case costs no numpy call); anything else is assigned to a
//!   one-element array of the dtype (numpy does the conversion: tuples to records, `np.void`s,
//!   scalars) or packed with the `struct.Struct`.
//! - **Receiving** ([`Out`]): a value is written into a row of a numpy array of ours, and
//!   `array[row]` returned: a fresh scalar for plain dtypes; for structured ones an `np.void`
//!   over a row that is never written again (rows come from blocks of about 4 KiB, so a record
//!   the caller keeps holds its block). With `format=`, `struct.unpack` of the bytes: a tuple.

use std::sync::Mutex;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyMemoryView, PyTuple};

use shmchan::untyped::Element;

use crate::buf;

static NP_EMPTY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static NP_DTYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static NP_ASCONTIGUOUS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn np_attr<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    attr: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.import(py, "numpy", attr)
}

/// A numpy array made here whose buffer we hold exported (`PyObject_GetBuffer`), so that its
/// memory stays where it is for as long as we keep it.
pub(crate) struct Held {
    arr: Py<PyAny>,
    view: buf::Borrowed,
}

// SAFETY: `Borrowed` is a `Py_buffer` (plain data: pointers into the array we keep a reference
// to); it is only touched with the GIL held, and dropped with it held (it lives in a pyclass's
// mutex, dropped in the class's deallocation or by a method, never inside `py.detach`). The
// bytes it points to may be written without the GIL (a receive into a row), which is what the
// export is for.
unsafe impl Send for Held {}

impl Held {
    /// `numpy.empty(n, dtype)`, held.
    fn empty(py: Python<'_>, dtype: &Py<PyAny>, n: usize) -> PyResult<Held> {
        let arr = np_attr(py, &NP_EMPTY, "empty")?.call1((n, dtype.bind(py)))?;
        let mut view = buf::Borrowed::write(&arr)?;
        // Touch the memory: a page fault later would happen in a receive.
        view.bytes_mut().fill(0);
        Ok(Held {
            arr: arr.unbind(),
            view,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.view.bytes()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.view.bytes_mut()
    }
}

/// A plain dtype whose Python `int`s (or `float`s) are converted here, without numpy.
#[derive(Clone, Copy, Debug)]
enum Scalar {
    Unsigned(usize),
    Signed(usize),
    Float(usize),
}

impl Scalar {
    /// The bytes of `value` if it is an exact `int` (or `float`) this dtype takes; `None` to
    /// let numpy convert it.
    fn encode(self, value: &Bound<'_, PyAny>) -> PyResult<Option<Encoded>> {
        match self {
            Scalar::Unsigned(n) if value.is_exact_instance_of::<PyInt>() => {
                let v: u64 = value
                    .extract()
                    .map_err(|_| out_of_bounds(value, "uint", n))?;
                if n < 8 && v >> (8 * n) != 0 {
                    return Err(out_of_bounds(value, "uint", n));
                }
                Ok(Some(low_bytes(v.to_ne_bytes(), n)))
            }
            Scalar::Signed(n) if value.is_exact_instance_of::<PyInt>() => {
                let v: i64 = value
                    .extract()
                    .map_err(|_| out_of_bounds(value, "int", n))?;
                let bits = 8 * n as u32;
                if n < 8 && (v < -(1i64 << (bits - 1)) || v >= 1i64 << (bits - 1)) {
                    return Err(out_of_bounds(value, "int", n));
                }
                Ok(Some(low_bytes(v.to_ne_bytes(), n)))
            }
            Scalar::Float(8) if value.is_exact_instance_of::<PyFloat>() => {
                let v: f64 = value.extract()?;
                Ok(Some(Encoded::new(&v.to_ne_bytes())))
            }
            Scalar::Float(4) if value.is_exact_instance_of::<PyFloat>() => {
                let v: f64 = value.extract()?;
                Ok(Some(Encoded::new(&(v as f32).to_ne_bytes())))
            }
            _ => Ok(None),
        }
    }
}

/// The `n` low-order bytes of a native-endian `u64`'s bytes, in native order.
fn low_bytes(b: [u8; 8], n: usize) -> Encoded {
    if cfg!(target_endian = "little") {
        Encoded::new(&b[..n])
    } else {
        Encoded::new(&b[8 - n..])
    }
}

fn out_of_bounds(value: &Bound<'_, PyAny>, kind: &str, n: usize) -> PyErr {
    PyOverflowError::new_err(format!(
        "Python integer {value} out of bounds for {kind}{}",
        8 * n
    ))
}

/// One element's bytes, made from a Python value.
pub(crate) enum Encoded {
    Inline([u8; 64], usize),
    Heap(Vec<u8>),
}

impl Encoded {
    fn new(bytes: &[u8]) -> Encoded {
        if bytes.len() <= 64 {
            let mut a = [0u8; 64];
            a[..bytes.len()].copy_from_slice(bytes);
            Encoded::Inline(a, bytes.len())
        } else {
            Encoded::Heap(bytes.to_vec())
        }
    }
}

impl std::ops::Deref for Encoded {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Encoded::Inline(a, n) => &a[..*n],
            Encoded::Heap(v) => v,
        }
    }
}

/// Whole elements to send: a caller's buffer borrowed as it is, or bytes made from a sequence.
pub(crate) enum Batch {
    Borrowed(buf::Borrowed),
    Made(Py<PyBytes>),
}

impl Batch {
    pub(crate) fn bytes<'a>(&'a self, py: Python<'a>) -> &'a [u8] {
        match self {
            Batch::Borrowed(b) => b.bytes(),
            Batch::Made(b) => b.as_bytes(py),
        }
    }
}

enum Repr {
    Dtype {
        dtype: Py<PyAny>,
        /// `kind == 'V'`: `array[i]` is a view (an `np.void`), not a copy.
        void: bool,
        fast: Option<Scalar>,
    },
    Format {
        st: Py<PyAny>,
        format: String,
        fields: usize,
    },
}

/// A typed channel's element: what the library checks (name, size, alignment) and how values
/// are converted.
pub(crate) struct Codec {
    element: Element,
    repr: Repr,
    /// A one-element array of the dtype for numpy's conversions on send (`try_lock`ed; a
    /// fresh one is made when it is busy, e.g. during a conversion that runs Python code).
    scratch: Mutex<Option<Held>>,
    /// Said after a `Incompatible` error when the dtype is laid out unaligned.
    hint: Option<&'static str>,
}

/// The (count, code) items of a `struct` format, its byte-order character skipped.
fn format_fields(fmt: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let mut count: Option<usize> = None;
    for (i, c) in fmt.chars().enumerate() {
        if i == 0 && "@=<>!".contains(c) {
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if let Some(d) = c.to_digit(10) {
            count = Some(count.unwrap_or(0) * 10 + d as usize);
            continue;
        }
        out.push((count.take().unwrap_or(1), c));
    }
    out
}

impl Codec {
    /// The element of `dtype` or `format` (exactly one of them) named `type_name`.
    pub(crate) fn new(
        py: Python<'_>,
        dtype: Option<&Bound<'_, PyAny>>,
        format: Option<&str>,
        type_name: Option<&str>,
    ) -> PyResult<Codec> {
        let Some(type_name) = type_name else {
            return Err(PyTypeError::new_err(
                "type_name= is required: the name the other side knows the element by (a Rust \
                 sender or receiver sets it with Options::type_name(\"Quote\")); Python cannot \
                 know it",
            ));
        };
        match (dtype, format) {
            (Some(_), Some(_)) => Err(PyTypeError::new_err(
                "give dtype= (a numpy dtype) or format= (a struct format), not both",
            )),
            (None, None) => Err(PyTypeError::new_err(
                "an element type is required: dtype= (a numpy dtype, e.g. np.dtype([...], \
                 align=True)) or format= (a struct format, e.g. \"<IIqq\")",
            )),
            (Some(dtype), None) => Self::of_dtype(py, dtype, type_name),
            (None, Some(format)) => Self::of_format(py, format, type_name),
        }
    }

    fn of_dtype(py: Python<'_>, dtype: &Bound<'_, PyAny>, type_name: &str) -> PyResult<Codec> {
        let dt = np_attr(py, &NP_DTYPE, "dtype")?.call1((dtype,))?;
        if dt.getattr("hasobject")?.is_truthy()? {
            return Err(PyTypeError::new_err(format!(
                "dtype {dt} holds Python objects, which cannot cross processes (use fixed-size \
                 fields: numbers, fixed-length bytes 'S<n>', ...)"
            )));
        }
        if !dt.getattr("subdtype")?.is_none() {
            return Err(PyTypeError::new_err(format!(
                "dtype {dt} is a sub-array: wrap it in a structured dtype with one field, \
                 np.dtype([(\"v\", {dt})])"
            )));
        }
        let size: usize = dt.getattr("itemsize")?.extract()?;
        let align: usize = dt.getattr("alignment")?.extract()?;
        let kind: String = dt.getattr("kind")?.extract()?;
        let native: bool = dt.getattr("isnative")?.extract()?;
        let structured = !dt.getattr("names")?.is_none();
        let fast = match (kind.as_str(), size, native) {
            ("u", 1 | 2 | 4 | 8, true) => Some(Scalar::Unsigned(size)),
            ("i", 1 | 2 | 4 | 8, true) => Some(Scalar::Signed(size)),
            ("f", 4 | 8, true) => Some(Scalar::Float(size)),
            _ => None,
        };
        let hint = (structured && align == 1 && size > 1).then_some(
            "the dtype is laid out unaligned (alignment 1): np.dtype([...], align=True) lays it \
             out as a C struct (#[repr(C)]) is",
        );
        Ok(Codec {
            element: Element::new(type_name, size, align),
            repr: Repr::Dtype {
                dtype: dt.unbind(),
                void: kind == "V",
                fast,
            },
            scratch: Mutex::new(None),
            hint,
        })
    }

    fn of_format(py: Python<'_>, format: &str, type_name: &str) -> PyResult<Codec> {
        let structmod = py.import("struct")?;
        let st = structmod.getattr("Struct")?.call1((format,))?;
        let size: usize = st.getattr("size")?.extract()?;
        let mode = format
            .chars()
            .next()
            .filter(|c| "@=<>!".contains(*c))
            .unwrap_or('@');
        let calcsize = structmod.getattr("calcsize")?;
        let mut align = 1;
        let mut fields = 0;
        for (count, c) in format_fields(format) {
            match c {
                'x' => {}
                's' | 'p' => fields += 1,
                _ => {
                    let a: usize = calcsize.call1((format!("{mode}{c}"),))?.extract()?;
                    align = align.max(a);
                    fields += count;
                }
            }
        }
        if size == 0 || size % align != 0 {
            return Err(PyValueError::new_err(format!(
                "format {format:?} is {size} bytes, not a multiple of its alignment {align}: a C \
                 struct of these fields ends with padding; add it to the format (e.g. \"{}x\" at \
                 the end)",
                align - size % align
            )));
        }
        Ok(Codec {
            element: Element::new(type_name, size, align),
            repr: Repr::Format {
                st: st.unbind(),
                format: format.to_owned(),
                fields,
            },
            scratch: Mutex::new(None),
            hint: None,
        })
    }

    pub(crate) fn element(&self) -> &Element {
        &self.element
    }

    pub(crate) fn size(&self) -> usize {
        self.element.size()
    }

    /// What to add to an `Incompatible` error's message, if anything.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        self.hint
    }

    /// The dtype, or `None` for a `format=` element.
    pub(crate) fn dtype<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        match &self.repr {
            Repr::Dtype { dtype, .. } => Some(dtype.bind(py).clone()),
            Repr::Format { .. } => None,
        }
    }

    /// The struct format, or `None` for a `dtype=` element.
    pub(crate) fn format(&self) -> Option<&str> {
        match &self.repr {
            Repr::Dtype { .. } => None,
            Repr::Format { format, .. } => Some(format),
        }
    }

    /// How the element is described in messages and reprs.
    pub(crate) fn describe(&self, py: Python<'_>) -> String {
        let what = match &self.repr {
            Repr::Dtype { dtype, .. } => format!("dtype={}", dtype.bind(py)),
            Repr::Format { format, .. } => format!("format={format:?}"),
        };
        format!(
            "{:?} ({what}, {} bytes, alignment {})",
            self.element.name(),
            self.element.size(),
            self.element.align()
        )
    }

    fn wrong_length(&self, n: usize) -> PyErr {
        PyValueError::new_err(format!(
            "a bytes value must be exactly one element: {} bytes, not {n}",
            self.size()
        ))
    }

    /// The bytes of one element from `value`.
    pub(crate) fn encode(&self, value: &Bound<'_, PyAny>) -> PyResult<Encoded> {
        let py = value.py();
        if is_plain_buffer(value) {
            let b = buf::Borrowed::read(value)?;
            if b.len() != self.size() {
                return Err(self.wrong_length(b.len()));
            }
            return Ok(Encoded::new(b.bytes()));
        }
        match &self.repr {
            Repr::Dtype { dtype, fast, .. } => {
                if let Some(fast) = fast {
                    if let Some(e) = fast.encode(value)? {
                        return Ok(e);
                    }
                }
                // Never blocks: a busy scratch (a conversion on another thread, or one that
                // came back here through Python code) gets a fresh array instead.
                let mut guard = self.scratch.try_lock().ok();
                let mut fresh = None;
                let held = match guard.as_deref_mut() {
                    Some(slot) => {
                        if slot.is_none() {
                            *slot = Some(Held::empty(py, dtype, 1)?);
                        }
                        slot.as_mut().expect("set above")
                    }
                    None => fresh.insert(Held::empty(py, dtype, 1)?),
                };
                held.arr.bind(py).set_item(0, value)?;
                Ok(Encoded::new(held.bytes()))
            }
            Repr::Format { st, fields, .. } => {
                let st = st.bind(py);
                let packed = if let Ok(t) = value.cast::<PyTuple>() {
                    st.call_method1("pack", t)?
                } else if let Ok(l) = value.cast::<PyList>() {
                    st.call_method1("pack", l.to_tuple())?
                } else if *fields == 1 {
                    st.call_method1("pack", (value,))?
                } else {
                    return Err(PyTypeError::new_err(format!(
                        "a value of this channel is a tuple of {fields} fields (or bytes of one \
                         element), not {}",
                        value.get_type().name()?
                    )));
                };
                let b = packed.cast::<PyBytes>()?;
                Ok(Encoded::new(b.as_bytes()))
            }
        }
    }

    /// Whole elements from `values`: an ndarray of the dtype (C-contiguous), a bytes-like
    /// object of whole elements, or (converted) a sequence of values.
    pub(crate) fn batch(&self, values: &Bound<'_, PyAny>) -> PyResult<Batch> {
        let py = values.py();
        let b = if is_plain_buffer(values) {
            buf::Borrowed::read(values)?
        } else {
            match &self.repr {
                Repr::Dtype { dtype, .. } => {
                    if let Ok(dt) = values.getattr("dtype") {
                        if !dt.eq(dtype.bind(py))? {
                            return Err(PyTypeError::new_err(format!(
                                "the array's dtype {dt} is not the channel's {} (convert it \
                                 with .astype(), or make it with the channel's dtype)",
                                dtype.bind(py)
                            )));
                        }
                        buf::Borrowed::read(values).map_err(|e| {
                            PyValueError::new_err(format!(
                                "the array must be C-contiguous (np.ascontiguousarray): {e}"
                            ))
                        })?
                    } else {
                        let arr = np_attr(py, &NP_ASCONTIGUOUS, "ascontiguousarray")?
                            .call1((values, dtype.bind(py)))?;
                        buf::Borrowed::read(&arr)?
                    }
                }
                Repr::Format { .. } => {
                    if let Ok(b) = buf::Borrowed::read(values) {
                        b
                    } else {
                        let mut out = Vec::new();
                        for v in values.try_iter()? {
                            out.extend_from_slice(&self.encode(&v?)?);
                        }
                        return Ok(Batch::Made(PyBytes::new(py, &out).unbind()));
                    }
                }
            }
        };
        if b.len() % self.size() != 0 {
            return Err(PyValueError::new_err(format!(
                "{} bytes are not a whole number of {}-byte elements",
                b.len(),
                self.size()
            )));
        }
        Ok(Batch::Borrowed(b))
    }

    /// A caller's buffer to receive into: a writable C-contiguous ndarray of the dtype, or a
    /// writable buffer of whole elements (at least one).
    pub(crate) fn destination(&self, buffer: &Bound<'_, PyAny>) -> PyResult<buf::Borrowed> {
        let py = buffer.py();
        let mut array = false;
        if let Repr::Dtype { dtype, .. } = &self.repr {
            if !is_plain_buffer(buffer) {
                if let Ok(dt) = buffer.getattr("dtype") {
                    array = true;
                    if !dt.is(dtype.bind(py)) && !dt.eq(dtype.bind(py))? {
                        return Err(PyTypeError::new_err(format!(
                            "the array's dtype {dt} is not the channel's {}",
                            dtype.bind(py)
                        )));
                    }
                }
            }
        }
        let b = buf::Borrowed::write(buffer).map_err(|e| {
            if array {
                PyValueError::new_err(format!("the array must be writable and C-contiguous: {e}"))
            } else {
                e
            }
        })?;
        if b.len() < self.size() || b.len() % self.size() != 0 {
            return Err(PyValueError::new_err(format!(
                "the buffer must hold a whole number of {}-byte elements, at least one (it has \
                 {} bytes)",
                self.size(),
                b.len()
            )));
        }
        Ok(b)
    }

    /// A new [`Out`] for this element.
    pub(crate) fn out(&self, py: Python<'_>) -> Out {
        match &self.repr {
            Repr::Dtype { dtype, void, .. } => Out::Rows {
                dtype: dtype.clone_ref(py),
                block: None,
                rows: if *void {
                    (4096 / self.size()).clamp(1, 256)
                } else {
                    1
                },
                next: 0,
                advance: *void,
            },
            Repr::Format { st, .. } => Out::Packed {
                st: st.clone_ref(py),
                buf: vec![0; self.size()],
            },
        }
    }
}

/// `bytes`, `bytearray` or `memoryview`: taken as raw bytes.
fn is_plain_buffer(v: &Bound<'_, PyAny>) -> bool {
    v.is_exact_instance_of::<PyBytes>()
        || v.is_exact_instance_of::<PyByteArray>()
        || v.is_exact_instance_of::<PyMemoryView>()
}

/// Where a receiver puts one element, and how it becomes a Python value.
pub(crate) enum Out {
    Rows {
        dtype: Py<PyAny>,
        block: Option<Held>,
        rows: usize,
        /// The next row to fill: never one already handed out when `advance`.
        next: usize,
        advance: bool,
    },
    Packed {
        st: Py<PyAny>,
        buf: Vec<u8>,
    },
}

impl Out {
    /// The bytes the next element goes to.
    pub(crate) fn slot(&mut self, py: Python<'_>) -> PyResult<&mut [u8]> {
        match self {
            Out::Rows {
                dtype,
                block,
                rows,
                next,
                ..
            } => {
                if block.is_none() || *next == *rows {
                    *block = Some(Held::empty(py, dtype, *rows)?);
                    *next = 0;
                }
                let held = block.as_mut().expect("made above");
                let size = held.bytes().len() / *rows;
                Ok(&mut held.bytes_mut()[*next * size..(*next + 1) * size])
            }
            Out::Packed { buf, .. } => Ok(buf),
        }
    }

    /// The element just written to [`slot`](Self::slot), as a Python value.
    pub(crate) fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Out::Rows {
                block,
                next,
                advance,
                ..
            } => {
                let held = block.as_ref().expect("slot() made it");
                let v = held.arr.bind(py).get_item(*next)?;
                if *advance {
                    *next += 1;
                }
                Ok(v)
            }
            Out::Packed { st, buf } => st.bind(py).call_method1("unpack", (PyBytes::new(py, buf),)),
        }
    }
}
