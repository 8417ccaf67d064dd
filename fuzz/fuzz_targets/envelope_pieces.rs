//! The envelope read in pieces on two threads must give exactly what one
//! pass gives, whatever the records hold: any bytes, repeated as the
//! `Records` elements of a payload large enough to be split (so the guessed
//! boundaries land in and around the fuzzer's bytes), decoded with one
//! thread and with two. Same records, same verdicts, same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_schemas::InvocationDecoder;

/// Above the size from which the envelope is split.
const PAYLOAD_BYTES: usize = 640 * 1024;

const RECORD: &str = r#"{"kinesis":{"partitionKey":"k","sequenceNumber":"1","data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1.5},"eventID":"shardId-000000000000:1","eventSourceARN":"arn:aws:kinesis:eu-west-1:1:stream/s"}"#;

fuzz_target!(|data: &[u8]| {
    // the fuzzer's bytes as a whole element, then between two real ones
    let element = [data.to_vec(), [RECORD.as_bytes(), b",", data].concat()];
    for element in element {
        if element.is_empty() {
            continue;
        }
        let mut payload = br#"{"Records":["#.to_vec();
        while payload.len() < PAYLOAD_BYTES {
            payload.extend_from_slice(RECORD.as_bytes());
            payload.push(b',');
            payload.extend_from_slice(&element);
            payload.push(b',');
        }
        payload.extend_from_slice(RECORD.as_bytes());
        payload.extend_from_slice(b"]}");
        let mut one = InvocationDecoder::default().with_threads(1);
        let mut two = InvocationDecoder::default().with_threads(2);
        let (mut a, mut b) = (payload.clone(), payload);
        let (serial, pieces) = (one.decode(&mut a), two.decode(&mut b));
        assert_eq!(serial, pieces);
    }
});
