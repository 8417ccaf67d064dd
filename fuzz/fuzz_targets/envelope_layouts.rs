//! Records read by the layout learnt from the records before them must give
//! exactly what reading each in full gives: any bytes as a record between
//! well-formed ones (before and after it, so that it is both read by a
//! layout and learnt from), and any bytes as a whole payload. Same records,
//! same window, same error.
#![no_main]

use libfuzzer_sys::fuzz_target;

const RECORD: &str = r#"{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"k","sequenceNumber":"1","data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1.5},"eventSource":"aws:kinesis","eventID":"shardId-000000000000:1","eventSourceARN":"arn:aws:kinesis:eu-west-1:1:stream/s"}"#;

fuzz_target!(|data: &[u8]| {
    assert!(pipeline_schemas::layouts_agree(data));
    let mut payload = br#"{"Records":["#.to_vec();
    for element in [RECORD.as_bytes(), RECORD.as_bytes(), data, RECORD.as_bytes(), data] {
        payload.extend_from_slice(element);
        payload.push(b',');
    }
    payload.extend_from_slice(RECORD.as_bytes());
    payload.extend_from_slice(b"]}");
    assert!(pipeline_schemas::layouts_agree(&payload));
});
