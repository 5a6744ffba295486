//! Framer throughput: stanzas/s and MB/s over a realistic corpus (chat messages with bodies,
//! presence, MUC traffic, 200 B to 4 KiB), fed in 64 KiB reads as a socket would deliver it.
//!
//! `cargo bench --bench framer`; figures go to `perf/RESULTS.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use palisade_core::wire::{Frame, Framer, Limits};

const HEADER: &str = "<stream:stream xmlns='jabber:component:accept' \
    xmlns:stream='http://etherx.jabber.org/streams' to='imp1.example.com'>";

fn chat(i: usize, body_len: usize) -> String {
    let body: String = "Lorem ipsum dolor sit amet, trade and research desk "
        .chars()
        .cycle()
        .take(body_len)
        .collect();
    format!(
        "<message xmlns='jabber:client' from='user{a}@example.com/desk' to='user{b}@example.com' \
         type='chat' id='m{i}'><body>{body} &amp; more</body><active xmlns='http://jabber.org/protocol/chatstates'/>\
         <thread>t{a}-{b}</thread></message>",
        a = i % 1000,
        b = (i * 7) % 1000
    )
}

fn presence(i: usize) -> String {
    format!(
        "<presence xmlns='jabber:client' from='user{a}@example.com/desk' to='user{b}@example.com'>\
         <show>away</show><status>In a meeting</status><priority>5</priority>\
         <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://pidgin.im/' ver='AcN1/PEN8nq7AHD+9jpxMV4U6YM='/>\
         </presence>",
        a = i % 1000,
        b = (i * 3) % 1000
    )
}

fn muc(i: usize, body_len: usize) -> String {
    let body: String = "Group chat line with some market colour \u{20ac} "
        .chars()
        .cycle()
        .take(body_len)
        .collect();
    format!(
        "<message xmlns='jabber:client' from='user{a}@example.com/desk' to='room{r}@conference.example.com' \
         type='groupchat' id='g{i}'><body>{body}</body>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/></x></message>",
        a = i % 1000,
        r = i % 50
    )
}

/// A corpus of `n` stanzas; `mix` picks the kind and size of each.
fn corpus(n: usize, mix: impl Fn(usize) -> String) -> (Vec<u8>, usize) {
    let mut s = String::from(HEADER);
    for i in 0..n {
        s.push_str(&mix(i));
    }
    (s.into_bytes(), n)
}

fn frame_all(input: &[u8]) -> usize {
    let mut framer = Framer::new(Limits::default());
    let mut stanzas = 0;
    for chunk in input.chunks(64 * 1024) {
        framer.feed(chunk);
        while let Ok(Some(frame)) = framer.next_frame() {
            if let Frame::Stanza(s) = frame {
                std::hint::black_box(&s);
                stanzas += 1;
            }
        }
    }
    stanzas
}

/// The floor: xmlparser alone tokenizing the same stanzas, with nothing else done.
fn tokenize_only(input: &[u8]) -> usize {
    let text = std::str::from_utf8(&input[HEADER.len()..]).unwrap_or("");
    let mut depth = 0usize;
    let mut stanzas = 0;
    for token in xmlparser::Tokenizer::from_fragment(text, 0..text.len()) {
        match token {
            Ok(xmlparser::Token::ElementStart { .. }) => depth += 1,
            Ok(xmlparser::Token::ElementEnd { end, .. }) => match end {
                xmlparser::ElementEnd::Open => {}
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        stanzas += 1;
                    }
                }
            },
            Ok(_) => {}
            Err(_) => break,
        }
    }
    stanzas
}

fn bench(c: &mut Criterion) {
    let sets: Vec<(&str, (Vec<u8>, usize))> = vec![
        ("chat-400B", corpus(20_000, |i| chat(i, 180))),
        ("presence", corpus(20_000, presence)),
        ("muc-300B", corpus(20_000, |i| muc(i, 100))),
        (
            "mixed-200B-4KiB",
            corpus(20_000, |i| match i % 10 {
                0..=4 => chat(i, 40 + (i * 37) % 400),
                5..=6 => presence(i),
                7..=8 => muc(i, 60 + (i * 13) % 300),
                _ => chat(i, 1000 + (i * 101) % 3000),
            }),
        ),
    ];
    for (name, (input, n)) in &sets {
        assert_eq!(
            frame_all(input),
            *n,
            "{name}: the corpus must frame completely"
        );
        let mut group = c.benchmark_group("framer-stanzas");
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| frame_all(input))
        });
        group.finish();
        assert_eq!(tokenize_only(input), *n);
        let mut group = c.benchmark_group("xmlparser-baseline");
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| tokenize_only(input))
        });
        group.finish();
        let mut group = c.benchmark_group("framer-bytes");
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| frame_all(input))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
