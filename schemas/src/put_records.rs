//! Kinesis' `PutRecords` limits, which every producer of the stream obeys (the
//! order functions' outbox, the dead-letter redrive).
//!
//! Kinesis refuses a whole call that breaks a limit, not only the record that
//! broke it: a producer that batched by count alone would see one batch of
//! large events fail on every retry, and everything queued behind it wait.
//! The local servers the tests run against do not enforce these limits, so
//! they are enforced, and tested, here.

use std::ops::Range;

/// Records in one call.
pub const MAX_RECORDS_PER_PUT: usize = 500;
/// Bytes in one call: data and partition keys.
pub const MAX_BYTES_PER_PUT: usize = 5 * 1024 * 1024;
/// Bytes of one record: its data and its partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Characters of a partition key (at least one).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Why a record can never be put, however it is batched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unputtable {
    /// Kinesis takes a partition key of 1 to 256 characters.
    #[error("a partition key of {0} characters (Kinesis takes 1 to 256)")]
    PartitionKey(usize),
    /// Kinesis takes at most 1 MiB of data and partition key.
    #[error("{0} bytes with its partition key (Kinesis takes at most 1 MiB a record)")]
    TooLarge(usize),
}

/// The bytes a record counts for against the limits: its data and its key.
pub fn counted_bytes(partition_key: &str, data_len: usize) -> usize {
    data_len.saturating_add(partition_key.len())
}

/// The bytes a record counts for against the limits, or why it cannot be put.
pub fn record_size(partition_key: &str, data_len: usize) -> Result<usize, Unputtable> {
    let chars = partition_key.chars().count();
    if !(1..=MAX_PARTITION_KEY_CHARS).contains(&chars) {
        return Err(Unputtable::PartitionKey(chars));
    }
    let size = counted_bytes(partition_key, data_len);
    if size > MAX_RECORD_BYTES {
        return Err(Unputtable::TooLarge(size));
    }
    Ok(size)
}

/// Splits records of `sizes` (from [`record_size`]), in order, into the
/// fewest consecutive calls within the count and byte limits.
pub fn put_calls(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut calls = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_RECORDS_PER_PUT || bytes + size > MAX_BYTES_PER_PUT) {
            calls.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        calls.push(start..sizes.len());
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(calls: &[Range<usize>]) -> Vec<usize> {
        calls.iter().map(|r| r.len()).collect()
    }

    #[test]
    fn calls_hold_at_most_500_records() {
        assert_eq!(lens(&put_calls(&[10; 1001])), vec![500, 500, 1]);
        assert_eq!(lens(&put_calls(&[10; 500])), vec![500]);
        assert!(put_calls(&[]).is_empty());
    }

    #[test]
    fn calls_hold_at_most_5_mib() {
        // six records of just under 1 MiB: five fit a call, the sixth starts the next
        assert_eq!(lens(&put_calls(&[MAX_RECORD_BYTES - 1; 6])), vec![5, 1]);
        // exactly 5 MiB fits; one byte more does not
        let fifth = MAX_BYTES_PER_PUT / 5;
        assert_eq!(lens(&put_calls(&[fifth; 5])), vec![5]);
        assert_eq!(
            lens(&put_calls(&[fifth, fifth, fifth, fifth, fifth + 1])),
            vec![4, 1]
        );
        // 40 KB order events, as the largest ones are: 131 a call, not 500
        let calls = put_calls(&[40_000; 600]);
        assert_eq!(lens(&calls), vec![131, 131, 131, 131, 76]);
        // consecutive and complete
        assert_eq!(calls.first().map(|r| r.start), Some(0));
        assert!(calls.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(calls.last().map(|r| r.end), Some(600));
    }

    #[test]
    fn a_record_counts_its_data_and_its_partition_key() {
        assert_eq!(record_size("order-1", 100), Ok(107));
        assert_eq!(record_size("k", MAX_RECORD_BYTES - 1), Ok(MAX_RECORD_BYTES));
        assert_eq!(
            record_size("kk", MAX_RECORD_BYTES - 1),
            Err(Unputtable::TooLarge(MAX_RECORD_BYTES + 1))
        );
        assert_eq!(record_size("", 1), Err(Unputtable::PartitionKey(0)));
        // characters, not bytes: 256 two-byte characters are a valid key
        assert!(record_size(&"é".repeat(256), 1).is_ok());
        assert_eq!(
            record_size(&"é".repeat(257), 1),
            Err(Unputtable::PartitionKey(257))
        );
        assert!(
            Unputtable::TooLarge(2_000_000)
                .to_string()
                .contains("2000000 bytes")
        );
    }
}
