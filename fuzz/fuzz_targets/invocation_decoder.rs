//! Any bytes as a whole invocation payload, and any bytes as a record inside
//! a well-formed payload: never a panic, and one verdict per record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_schemas::InvocationDecoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = InvocationDecoder::default();
    let mut raw = data.to_vec();
    let _ = decoder.decode(&mut raw);

    let b64 = base64_simd::STANDARD.encode_to_string(data);
    let mut payload = format!(
        r#"{{"Records":[{{"kinesis":{{"partitionKey":"k","sequenceNumber":"1","data":"{b64}","approximateArrivalTimestamp":1.5}},"eventID":"shardId-000000000000:1","eventSourceARN":"arn:aws:kinesis:eu-west-1:1:stream/s"}}]}}"#
    )
    .into_bytes();
    let decoded = decoder.decode(&mut payload).expect("well-formed payload");
    assert_eq!(decoded.len(), 1);
});
