//! A panic in one connection's task, inside a real glommio executor: the connection is closed
//! with `internal-server-error` and the executor goes on serving its other tasks.

use super::*;
use crate::runtime::contain;
use crate::wire::{FromCheck, StreamConfig};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::Cell;

/// Runs `test` on a fresh single-threaded glommio executor.
fn on_executor<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) {
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("a glommio executor");
    ex.run(test());
}

/// A task that counts 1 ms ticks for as long as its executor runs.
fn bystander() -> Rc<Cell<u32>> {
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(1)).await;
            t.set(t.get() + 1);
        }
    })
    .detach();
    ticks
}

async fn still_ticking(ticks: &Cell<u32>) {
    let before = ticks.get();
    glommio::timer::sleep(Duration::from_millis(30)).await;
    assert!(
        ticks.get() > before,
        "the executor stopped serving other tasks"
    );
}

/// A connection's reader never awaits anything pending while its socket has data; it yields
/// only where `yield_if_needed` says the task queue is due to be preempted (`read_loop`). So
/// the executor must still say so with no I/O at all: the vendored glommio keeps that
/// deadline against the clock, not as a timer in its latency ring.
#[test]
fn a_task_that_never_waits_is_told_to_yield_within_its_preemption_period() {
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .preempt_timer(Duration::from_millis(1))
        .make()
        .expect("a glommio executor");
    ex.run(async {
        let ticks = bystander();
        let start = Instant::now();
        let mut yields = 0u32;
        // Only ever ready: without preemption the bystander never runs and this spins until
        // the limit.
        while ticks.get() < 20 && start.elapsed() < Duration::from_secs(10) {
            if glommio::executor().need_preempt() {
                yields += 1;
            }
            glommio::yield_if_needed().await;
        }
        let spun = start.elapsed();
        assert!(
            ticks.get() >= 20,
            "the bystander ticked {} times in {spun:?}: a task that never waits was not preempted",
            ticks.get()
        );
        // Twenty 1 ms ticks, each reached through a preemption of this task.
        assert!(yields >= 20, "{yields} preemptions in {spun:?}");
    });
}

#[test]
fn a_contained_panic_leaves_the_executor_serving_other_tasks() {
    on_executor(|| async {
        let ticks = bystander();
        contain::spawn(0, "a test task".to_owned(), async {
            glommio::timer::sleep(Duration::from_millis(2)).await;
            panic!("boom");
        });
        glommio::timer::sleep(Duration::from_millis(10)).await;
        still_ticking(&ticks).await;
    });
}

/// A receiving stream and its log label, as the tests' accepted connections use them.
fn receiver() -> (ComponentStream, Label) {
    let stream = ComponentStream::receiver(
        StreamConfig::default(),
        [7; 16],
        FromCheck::None,
        Instant::now(),
    );
    let label = Label {
        shard: 0,
        name: "test connection".to_owned(),
    };
    (stream, label)
}

#[test]
fn a_panic_while_serving_a_connection_closes_that_connection_only() {
    on_executor(|| async {
        let ticks = bystander();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = glommio::spawn_local(async move {
            let tcp = listener.accept().await.expect("accept");
            let (stream, label) = receiver();
            // Stands for any bug on the event path.
            let on_event = |_: &ConnRef, event: StreamEvent, _: Instant| {
                if let StreamEvent::NameAnnounced { .. } = event {
                    panic!("boom");
                }
            };
            let room = Waiters::default();
            drive(
                tcp,
                Conn::new(stream),
                &label,
                on_event,
                |_: &ConnRef| Hold::Read,
                &room,
            )
            .await
        });
        let mut client = open_component_stream(addr).await;
        let closed = server.await;
        assert_eq!(
            closed,
            Closed::Refused {
                condition: Condition::InternalServerError,
                reason: "internal error".to_owned()
            }
        );
        let mut seen = Vec::new();
        let read = async { client.read_to_end(&mut seen).await.is_ok() };
        let timeout = async {
            glommio::timer::sleep(Duration::from_secs(2)).await;
            false
        };
        assert!(
            futures_lite::future::or(read, timeout).await,
            "the connection was not closed"
        );
        let seen = String::from_utf8_lossy(&seen);
        assert!(seen.contains("<internal-server-error"), "{seen}");
        assert!(seen.ends_with("</stream:stream>"), "{seen}");
        still_ticking(&ticks).await;
    });
}

#[test]
fn a_reader_held_for_room_sleeps_until_the_room_is_announced() {
    on_executor(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let room = Rc::new(Waiters::default());
        let held = Rc::new(Cell::new(true));
        // How often the reader asked whether to read on.
        let asked = Rc::new(Cell::new(0u32));
        let (room2, held2, asked2) = (room.clone(), held.clone(), asked.clone());
        let server = glommio::spawn_local(async move {
            let tcp = listener.accept().await.expect("accept");
            let (stream, label) = receiver();
            let hold = move |_: &ConnRef| {
                asked2.set(asked2.get() + 1);
                match held2.get() {
                    true => Hold::UntilRoom,
                    false => Hold::Read,
                }
            };
            let on_event = |_: &ConnRef, _: StreamEvent, _: Instant| {};
            drive(tcp, Conn::new(stream), &label, on_event, hold, &room2).await
        });
        let client = open_component_stream(addr).await;
        // The reader read the header, answered it, and is held: it looked once, and once more
        // when its answer was written out.
        glommio::timer::sleep(Duration::from_millis(20)).await;
        let settled = asked.get();
        assert!(settled >= 1, "the reader never asked");
        glommio::timer::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            asked.get(),
            settled,
            "a held reader looked again without being woken (polling)"
        );
        held.set(false);
        room.notify_all();
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert!(
            asked.get() > settled,
            "the announced room did not wake the reader"
        );
        drop(client);
        // The reader reads on and sees the end.
        server.await;
    });
}

/// A read whose events queue nothing for its own connection (a router's event goes to a
/// server's stream) leaves that connection's writer asleep: no task run per read for nothing.
#[test]
fn a_read_that_queues_nothing_for_its_connection_leaves_its_writer_asleep() {
    on_executor(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Per read: whether the writer had a wake-up pending when the reader asked to read on.
        let woken = Rc::new(std::cell::RefCell::new(Vec::new()));
        let w = woken.clone();
        let server = glommio::spawn_local(async move {
            let tcp = listener.accept().await.expect("accept");
            let (stream, label) = receiver();
            let hold = move |conn: &ConnRef| {
                w.borrow_mut().push(conn.wake_writer.is_set());
                Hold::Read
            };
            // As the gateway does: a known name is answered with the stream's header.
            let on_event = |conn: &ConnRef, event: StreamEvent, _: Instant| {
                if let StreamEvent::NameAnnounced { .. } = event {
                    conn.stream.borrow_mut().accept_name(b"secret");
                }
            };
            let room = Waiters::default();
            drive(tcp, Conn::new(stream), &label, on_event, hold, &room).await
        });
        let mut client = open_component_stream(addr).await;
        // The stream's answer: its writer was woken for it, and ran.
        let mut answer = [0u8; 1024];
        assert!(client.read(&mut answer).await.expect("read") > 0);
        let before = woken.borrow().len();
        assert!(before >= 1, "the reader never asked");
        // The start of an element: read and buffered, nothing to answer yet.
        client.write_all(b"<handshake>").await.expect("write");
        for _ in 0..200 {
            if woken.borrow().len() > before {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        let pending = woken.borrow().get(before).copied();
        assert_eq!(
            pending,
            Some(false),
            "a read that queued nothing woke its connection's writer (None: never read); \
             pending wake-ups at each read: {:?}",
            woken.borrow()
        );
        drop(client);
        server.await;
    });
}

/// A client connected to `addr` that has sent a component stream's header.
async fn open_component_stream(addr: std::net::SocketAddr) -> glommio::net::TcpStream {
    let mut client = glommio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    client
        .write_all(
            b"<stream:stream xmlns='jabber:component:accept' \
              xmlns:stream='http://etherx.jabber.org/streams' to='c.example'>",
        )
        .await
        .expect("write");
    client
}
