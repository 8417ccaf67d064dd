//! zstd compression of column chunks with one compressor per thread.
//!
//! `parquet` gives every column writer a zstd compressor and a decompressor of
//! its own. Setting each up probes the CPU twice with `cpuid`, which traps to
//! the hypervisor on an x86 VM (Lambda's Firecracker included), and allocates
//! about 100 KB that the writer never uses (the decompressor): a third of a
//! 100-record invocation's time, an eighth of a 1,000-record one's. So the
//! column writers encode their chunks uncompressed into a [`PageRecorder`], and
//! [`compress`] then compresses each chunk's pages with the calling thread's
//! compressor, kept from one chunk (and invocation) to the next, and rewrites
//! the page headers and the chunk's metadata to match. The bytes are the ones
//! `parquet` writes itself with the same codec (tested against `ArrowWriter`).

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::page_store::{PageKey, PageStore, PageStoreArgs, PageStoreFactory};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;

/// The blobs of one column chunk as its writer stored them: each page's
/// serialized header, then its data, in the order the pages were written.
pub(crate) type Pages = Arc<Mutex<Vec<Bytes>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a poisoned lock means a panicking writer, which reaches the caller
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the blobs a column writer stored, once it has closed.
pub(crate) fn take(pages: &Pages) -> Vec<Bytes> {
    std::mem::take(&mut *lock(pages))
}

/// A [`PageStoreFactory`] that keeps a handle on every column chunk's pages,
/// so that they can be taken back once the column's writer has closed.
#[derive(Debug, Default)]
pub(crate) struct PageRecorder {
    columns: Mutex<Vec<(usize, Pages)>>,
}

impl PageRecorder {
    /// The pages of each column chunk created so far, in column order.
    pub(crate) fn take(&self) -> Vec<Pages> {
        let mut columns = std::mem::take(&mut *lock(&self.columns));
        columns.sort_unstable_by_key(|(index, _)| *index);
        columns.into_iter().map(|(_, pages)| pages).collect()
    }
}

impl PageStoreFactory for PageRecorder {
    fn create(&self, args: &PageStoreArgs<'_>) -> parquet::errors::Result<Box<dyn PageStore>> {
        let pages = Pages::default();
        lock(&self.columns).push((args.column_index(), Arc::clone(&pages)));
        Ok(Box::new(RecordedPages(pages)))
    }
}

/// One column chunk's store: the blobs stay reachable through the recorder.
struct RecordedPages(Pages);

impl PageStore for RecordedPages {
    fn put(&mut self, value: Bytes) -> parquet::errors::Result<PageKey> {
        let mut blobs = lock(&self.0);
        blobs.push(value);
        Ok(PageKey::new(blobs.len() as u64 - 1))
    }

    fn take(&mut self, key: PageKey) -> parquet::errors::Result<Bytes> {
        lock(&self.0)
            .get_mut(key.get() as usize)
            .map(std::mem::take)
            .ok_or_else(|| ParquetError::General(format!("no page blob {}", key.get())))
    }

    fn memory_size(&self) -> usize {
        lock(&self.0).iter().map(Bytes::len).sum()
    }
}

/// A thread's zstd compressor, its level, and a buffer for one page's output.
struct ThreadCompressor {
    level: i32,
    compressor: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
}

impl ThreadCompressor {
    /// The memory it holds: zstd's context and the output buffer.
    fn held(&mut self) -> usize {
        self.compressor.context_mut().sizeof() + self.out.capacity()
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<ThreadCompressor>> = const { RefCell::new(None) };
}

/// The most memory a thread's compressor keeps between chunks. zstd sizes
/// its tables to the level and the page: for a 1 MB page (`parquet`'s
/// limit), 0.6 MB at the default level 1 (with the 1 MB output buffer,
/// 1.6 MB kept), 5.8 MB at level 7, 11 MB from level 9 and 18 MB at 19, which
/// a 128 MB function cannot afford to keep on each worker thread. A bigger
/// one is dropped after its chunk and made again for the next, as `parquet`
/// does for every chunk.
const KEEP_AT_MOST: usize = 8 << 20;

/// Parquet's page types (`PageType` in the format's thrift definition).
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;

/// The leading fields of a serialized page header.
struct Header<'a> {
    page_type: i32,
    uncompressed_size: i32,
    compressed_size: i32,
    /// Everything after `compressed_page_size`: the page's own header
    /// (values, encodings, statistics), the same compressed or not.
    rest: &'a [u8],
}

/// Compresses a column chunk that its writer encoded uncompressed into
/// `pages`, with zstd at `level`: the dictionary page first (the writer
/// stores it last), then the data pages in order. Returns the chunk's bytes
/// and `close` with its sizes, offsets, page locations and codec updated.
pub(crate) fn compress(
    pages: Vec<Bytes>,
    mut close: ColumnCloseResult,
    level: ZstdLevel,
) -> Result<(Bytes, ColumnCloseResult), String> {
    if !pages.len().is_multiple_of(2) {
        return Err(format!(
            "a column chunk's pages came as {} blobs, not header and data pairs",
            pages.len()
        ));
    }
    let mut headers = Vec::with_capacity(pages.len() / 2);
    for pair in pages.chunks_exact(2) {
        let header = parse_header(&pair[0])?;
        let len = pair[1].len();
        if header.uncompressed_size as usize != len || header.compressed_size as usize != len {
            return Err(format!(
                "an uncompressed page of {len} bytes declared {} and {} bytes",
                header.uncompressed_size, header.compressed_size
            ));
        }
        headers.push((header, &pair[1]));
    }
    let dictionaries = headers
        .iter()
        .filter(|(h, _)| h.page_type == DICTIONARY_PAGE)
        .count();
    if dictionaries > 1 {
        return Err(format!(
            "{dictionaries} dictionary pages in one column chunk"
        ));
    }
    let raw: usize = pages.iter().map(Bytes::len).sum();
    let mut chunk = Vec::with_capacity(raw / 2 + 64);
    let mut uncompressed_total = 0usize;
    // (offset, size with header) of each data page, in order
    let mut located = Vec::with_capacity(headers.len());
    with_compressor(level.compression_level(), |compressor, out| {
        let dictionary_first = headers
            .iter()
            .filter(|(h, _)| h.page_type == DICTIONARY_PAGE);
        let data = headers.iter().filter(|(h, _)| h.page_type == DATA_PAGE);
        for (header, data) in dictionary_first.chain(data) {
            out.clear();
            out.reserve(zstd::zstd_safe::compress_bound(data.len()));
            compressor
                .compress_to_buffer(data, out)
                .map_err(|e| format!("zstd: {e}"))?;
            let start = chunk.len();
            write_header(&mut chunk, header, out.len())?;
            let header_len = chunk.len() - start;
            chunk.extend_from_slice(out);
            uncompressed_total += header_len + data.len();
            if header.page_type == DATA_PAGE {
                located.push((start, chunk.len() - start));
            }
        }
        Ok(())
    })?;
    if located.len() + dictionaries != headers.len() {
        return Err("a column chunk held a page that is neither data nor dictionary".to_owned());
    }
    let first_data = located.first().map_or(chunk.len(), |&(offset, _)| offset);
    if let Some(index) = close.offset_index.as_mut() {
        if index.page_locations.len() != located.len() {
            return Err(format!(
                "{} data pages for {} page locations",
                located.len(),
                index.page_locations.len()
            ));
        }
        for (location, &(offset, size)) in index.page_locations.iter_mut().zip(&located) {
            location.offset = offset as i64;
            location.compressed_page_size =
                i32::try_from(size).map_err(|_| format!("a compressed page of {size} bytes"))?;
        }
    }
    close.metadata = close
        .metadata
        .into_builder()
        .set_compression(Compression::ZSTD(level))
        .set_total_compressed_size(chunk.len() as i64)
        .set_total_uncompressed_size(uncompressed_total as i64)
        .set_dictionary_page_offset((dictionaries == 1).then_some(0))
        .set_data_page_offset(first_data as i64)
        .build()
        .map_err(|e| format!("column chunk metadata: {e}"))?;
    close.bytes_written = chunk.len() as u64;
    Ok((Bytes::from(chunk), close))
}

/// Runs `f` with this thread's compressor at `level`, creating it on the
/// thread's first use (or when the level changes, or after it was dropped
/// for its size, see [`KEEP_AT_MOST`]).
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>, &mut Vec<u8>) -> Result<T, String>,
) -> Result<T, String> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|c| c.level != level) {
            let compressor = zstd::bulk::Compressor::new(level)
                .map_err(|e| format!("zstd level {level}: {e}"))?;
            *slot = Some(ThreadCompressor {
                level,
                compressor,
                out: Vec::new(),
            });
        }
        let done = match slot.as_mut() {
            Some(c) => f(&mut c.compressor, &mut c.out),
            None => Err("no zstd compressor".to_owned()),
        };
        if slot.as_mut().is_some_and(|c| c.held() > KEEP_AT_MOST) {
            *slot = None;
        }
        done
    })
}

/// Reads the three leading fields of a page header in thrift's compact
/// protocol (`type`, `uncompressed_page_size`, `compressed_page_size`, each
/// an i32 one field id after the last), as `parquet` writes them.
fn parse_header(bytes: &[u8]) -> Result<Header<'_>, String> {
    let mut at = 0;
    let mut field = || {
        read_i32_field(bytes, &mut at).ok_or_else(|| {
            format!(
                "an unexpected page header layout ({} bytes, starting {:02x?})",
                bytes.len(),
                &bytes[..bytes.len().min(8)]
            )
        })
    };
    let page_type = field()?;
    let uncompressed_size = field()?;
    let compressed_size = field()?;
    Ok(Header {
        page_type,
        uncompressed_size,
        compressed_size,
        rest: &bytes[at..],
    })
}

/// Writes `header` with `compressed_size` in place of its own.
fn write_header(
    out: &mut Vec<u8>,
    header: &Header<'_>,
    compressed_size: usize,
) -> Result<(), String> {
    let compressed_size = i32::try_from(compressed_size)
        .map_err(|_| format!("a compressed page of {compressed_size} bytes"))?;
    for value in [header.page_type, header.uncompressed_size, compressed_size] {
        out.push(I32_NEXT_FIELD);
        let mut zigzag = ((value << 1) ^ (value >> 31)) as u32;
        while zigzag >= 0x80 {
            out.push((zigzag as u8) | 0x80);
            zigzag >>= 7;
        }
        out.push(zigzag as u8);
    }
    out.extend_from_slice(header.rest);
    Ok(())
}

/// A compact-protocol field header: field id one more than the last, type i32.
const I32_NEXT_FIELD: u8 = 0x15;

/// Reads an i32 field (header [`I32_NEXT_FIELD`], then a zigzag varint).
fn read_i32_field(bytes: &[u8], at: &mut usize) -> Option<i32> {
    if *bytes.get(*at)? != I32_NEXT_FIELD {
        return None;
    }
    *at += 1;
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i32) ^ -((value & 1) as i32));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory this thread's kept compressor holds, if one is kept.
    fn kept() -> Option<usize> {
        COMPRESSOR.with(|cell| cell.borrow_mut().as_mut().map(ThreadCompressor::held))
    }

    #[test]
    fn a_compressor_too_big_to_keep_is_dropped_after_its_chunk() {
        // a 1 MB page (parquet's default limit) of varied text
        let page: Vec<u8> = (0..1u32 << 20)
            .map(|i| b"0123456789abcdef"[(i.wrapping_mul(2_654_435_761) >> 27) as usize % 16])
            .collect();
        let compress = |level| {
            with_compressor(level, |c, out| {
                out.clear();
                out.reserve(zstd::zstd_safe::compress_bound(page.len()));
                c.compress_to_buffer(&page[..], out)
                    .map_err(|e| e.to_string())?;
                Ok(out.len())
            })
            .expect("compressed")
        };
        // the default level's compressor is kept, and small
        let small = compress(1);
        let kept_at_1 = kept().expect("kept at level 1");
        assert!(kept_at_1 <= KEEP_AT_MOST, "{kept_at_1} bytes kept");
        // the highest levels' are not, and still compress (better)
        let best = compress(19);
        assert!(best < small, "level 19: {best} bytes, level 1: {small}");
        assert_eq!(kept(), None, "a level-19 compressor was kept");
        // the next chunk at the default level makes its compressor again
        assert_eq!(compress(1), small);
        assert!(kept().is_some());
    }

    #[test]
    fn header_fields_read_back_as_written() {
        for (page_type, uncompressed, compressed) in [
            (0, 0, 0),
            (2, 127, 64),
            (0, 1 << 20, 300_000),
            (0, i32::MAX, 1),
        ] {
            let rest = [0x2c, 0x15, 0x04, 0x00];
            let header = Header {
                page_type,
                uncompressed_size: uncompressed,
                compressed_size: 7,
                rest: &rest,
            };
            let mut bytes = Vec::new();
            write_header(&mut bytes, &header, compressed as usize).expect("written");
            let back = parse_header(&bytes).expect("read back");
            assert_eq!(
                (
                    back.page_type,
                    back.uncompressed_size,
                    back.compressed_size,
                    back.rest
                ),
                (page_type, uncompressed, compressed, &rest[..])
            );
        }
    }

    #[test]
    fn a_header_of_another_layout_is_an_error_not_a_guess() {
        // a crc field (id 4) where compressed_page_size (3) should be
        let bytes = [0x15, 0x00, 0x15, 0x08, 0x25, 0x08];
        let err = parse_header(&bytes).err().expect("rejected");
        assert!(err.contains("page header layout"), "{err}");
        // cut short inside a varint
        assert!(parse_header(&[0x15, 0x80]).is_err());
        // a varint longer than an i32's five bytes
        assert!(parse_header(&[0x15, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }
}
