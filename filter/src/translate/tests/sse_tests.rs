//! The SSE splitter on its own.

use crate::translate::sse::{EventTooLarge, SseSplitter};

fn collect(chunks: &[&[u8]], max: usize) -> (Vec<(String, String)>, Result<(), EventTooLarge>) {
    let mut splitter = SseSplitter::new(max);
    let mut events = Vec::new();
    let mut on_event = |name: &[u8], data: &[u8]| {
        events.push((
            String::from_utf8(name.to_vec()).unwrap(),
            String::from_utf8(data.to_vec()).unwrap(),
        ))
    };
    for chunk in chunks {
        if let Err(e) = splitter.push(chunk, &mut on_event) {
            return (events, Err(e));
        }
    }
    splitter.finish(&mut on_event);
    (events, Ok(()))
}

#[test]
fn line_endings_comments_and_multiline_data() {
    let input: &[u8] =
        b"\xEF\xBB\xBF: comment\r\nevent: a\r\ndata: one\r\ndata:two\r\nid: 7\r\nretry: 5\r\n\r\nevent:b\rdata: x\r\rdata: y\n\n";
    let expected = vec![
        ("a".to_string(), "one\ntwo".to_string()),
        ("b".to_string(), "x".to_string()),
        ("".to_string(), "y".to_string()),
    ];
    let (whole, ok) = collect(&[input], 1024);
    assert!(ok.is_ok());
    assert_eq!(whole, expected);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        assert_eq!(collect(&[a, b], 1024).0, expected, "split at {split}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(collect(&bytes, 1024).0, expected);
}

#[test]
fn event_without_data_is_not_dispatched_and_trailing_event_is() {
    let (events, _) = collect(&[b"event: ping\n\ndata: last"], 1024);
    assert_eq!(events, vec![("".to_string(), "last".to_string())]);
}

#[test]
fn oversized_event_is_an_error_and_memory_stays_bounded() {
    let mut splitter = SseSplitter::new(64);
    let mut count = 0;
    let mut on_event = |_: &[u8], _: &[u8]| count += 1;
    assert!(splitter.push(b"data: small\n\n", &mut on_event).is_ok());
    let big = [b'x'; 100];
    let mut failed = false;
    for byte in b"data: ".iter().chain(big.iter()) {
        if splitter
            .push(std::slice::from_ref(byte), &mut on_event)
            .is_err()
        {
            failed = true;
            break;
        }
        assert!(splitter.buffered_bytes() <= 64);
    }
    assert!(failed);
    assert_eq!(count, 1);
    // Many data lines in one event count too.
    let mut splitter = SseSplitter::new(64);
    let lines = "data: 0123456789\n".repeat(10);
    assert_eq!(
        splitter.push(lines.as_bytes(), &mut |_: &[u8], _: &[u8]| {}),
        Err(EventTooLarge {
            max_event_bytes: 64
        })
    );
}
